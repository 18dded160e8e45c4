"""The scripted NPC provider: in-character lines from the persona, no network.

It answers when no API key is configured (so the game is playable out of
the box) and stands in whenever the LLM path cannot: budget spent, breaker
open, deadline passed. It is deterministic for a given job.
"""

from __future__ import annotations

import hashlib
from string import Template

import trio

from ..content.schema import Content, Persona
from ..tick.engine import SayJob
from .reply import Reply

__all__ = ["ScriptedProvider"]

_GREETING_WORDS = ("hi", "hello", "hey", "good morning", "good evening", "yo", "xin chao", "chao")


class ScriptedProvider:
    """Pick a line of the NPC's persona: a greeting, an answer to a question,
    or a reply; the choice depends only on the job's text and history."""

    name = "offline"

    def __init__(self, content: Content) -> None:
        self.content = content

    def line(self, job: SayJob) -> str:
        """The scripted line for ``job`` (deterministic)."""
        persona = self.content.personas.get(job.persona) or next(iter(self.content.personas.values()))
        lines = self._pool(persona, job)
        digest = hashlib.blake2b(f"{job.text}|{len(job.turns)}|{job.npc}".encode(), digest_size=4).digest()
        text = lines[int.from_bytes(digest, "big") % len(lines)]
        first = job.player_name.split()[0] if job.player_name.split() else job.player_name
        return Template(text).safe_substitute(first=first, name=job.player_name, npc=job.npc_name)

    async def reply(self, job: SayJob) -> Reply:
        """The provider's answer when no API key is configured."""
        return Reply(self.line(job), "offline")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Nothing to own: ready at once."""
        task_status.started()

    @staticmethod
    def _pool(persona: Persona, job: SayJob) -> tuple[str, ...]:
        lowered = job.text.strip().lower()
        if persona.greetings and (not job.turns or lowered.startswith(_GREETING_WORDS)):
            return persona.greetings
        if persona.questions and lowered.endswith("?"):
            return persona.questions
        return persona.replies
