"""The scripted NPC provider: in-character lines from the persona, no network.

It answers when no API key is configured (so the game is playable out of
the box) and stands in whenever the LLM path cannot: budget spent, breaker
open, deadline passed. It is deterministic for a given job.

A line must fit who talks to whom: a mother coos at her baby and asks her
teenager about homework. Content writes lines for roles and life stages
(:class:`~baolife.content.schema.Lines`); :meth:`ScriptedProvider.lines_for`
takes only the ones that fit the NPC's role, the player's stage and the
NPC's own stage: the persona's first, else the ``[[default_lines]]`` of
content, and of those the most specific.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from string import Template

import trio

from ..content.schema import Content, Lines, Persona
from ..tick.engine import SayJob
from .prompt import small_talk
from .reply import Reply, ReplySource

__all__ = ["ScriptedProvider"]

# Said only if content has no lines at all: validated content always has
# default lines for every role at every stage, so no game reaches this.
_SILENCE = "..."


def _most_specific(
    sets: tuple[Lines, ...], role: str | None, stage: str | None, npc_stage: str | None
) -> tuple[Lines, ...]:
    """The sets that fit and, of those, the ones that name the most: the
    speaker's stage first, then the role."""
    fitting = [ls for ls in sets if ls.fits(role, stage, npc_stage)]
    if not fitting:
        return ()

    def rank(ls: Lines) -> tuple[bool, bool]:
        return (npc_stage is not None and ls.npc_stages is not None, role is not None and ls.roles is not None)

    top = max(rank(ls) for ls in fitting)
    return tuple(ls for ls in fitting if rank(ls) == top)


class ScriptedProvider:
    """Pick a line that fits the NPC's role and the player's and NPC's life
    stages: a greeting, an answer to a question, or a reply; the choice
    depends only on the job."""

    name = "offline"

    def __init__(self, content: Content) -> None:
        self.content = content
        order = content.stage_order
        self._stage_names = order
        self._stage_starts = [content.world.stages[s] for s in order]

    def stage_at(self, years: int) -> str:
        """The life stage of someone ``years`` old (the NPC's stage)."""
        return self._stage_names[max(0, bisect_right(self._stage_starts, years) - 1)]

    def lines_for(self, persona: Persona, role: str, stage: str, npc_stage: str) -> tuple[Lines, ...]:
        """The line sets that fit ``role`` speaking to a player at ``stage``
        while the speaker is at ``npc_stage``: the persona's own, else the
        content's defaults. Of those that fit, only the most specific: sets
        for the speaker's stage (a baby babbles, whoever they are) before
        the rest, then sets naming the role before sets for anyone. Only a
        role or stage content does not know (a saved NPC whose role was
        removed) reaches past that, to looser defaults."""
        own = _most_specific(persona.lines, role, stage, npc_stage)
        if own:
            return own
        defaults = self.content.default_lines
        for want in ((role, stage, npc_stage), (role, stage, None), (None, stage, None), (None, None, None)):
            found = _most_specific(defaults, *want)
            if found:
                return found
        return persona.lines

    def line(self, job: SayJob) -> str:
        """The scripted line for ``job`` (deterministic)."""
        persona = self.content.personas.get(job.persona) or next(iter(self.content.personas.values()))
        sets = self.lines_for(persona, job.role, job.player_stage, self.stage_at(job.npc_years))
        lines = self._pool(sets, job) or (_SILENCE,)
        digest = hashlib.blake2b(f"{job.text}|{len(job.turns)}|{job.npc}".encode(), digest_size=4).digest()
        text = lines[int.from_bytes(digest, "big") % len(lines)]
        first = job.player_name.split()[0] if job.player_name.split() else job.player_name
        return Template(text).safe_substitute(first=first, name=job.player_name, npc=job.npc_name)

    async def reply(self, job: SayJob) -> Reply:
        """The provider's answer when no API key is configured."""
        return Reply(self.line(job), ReplySource.OFFLINE)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing to own: ready at once."""
        task_status.started()

    @staticmethod
    def _pool(sets: tuple[Lines, ...], job: SayJob) -> tuple[str, ...]:
        """Greetings for a first word or a hello, answers to a question,
        else replies (also when the fitting sets have no line of that kind)."""
        if not job.turns or small_talk(job.text, job.npc_name) == "greeting":
            greetings = tuple(line for ls in sets for line in ls.greetings)
            if greetings:
                return greetings
        if job.text.strip().endswith("?"):
            questions = tuple(line for ls in sets for line in ls.questions)
            if questions:
                return questions
        return tuple(line for ls in sets for line in ls.replies)
