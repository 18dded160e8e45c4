"""An NPC's conversation memory: the last turns, and a running summary of older ones.

Memory keeps the last ``LIMITS.npc_memory`` turns. The turns that fall off
are folded into ``Npc.summary`` (at most ``LIMITS.summary_chars``) by an
*extractive* summary: the player's own statements that carry something
("I got the job at the bank", "my cat died"), quoted and cut to one
sentence; greetings, one-word answers and the NPC's lines are dropped, and
when the summary is full the oldest notes go first.

Why not ask the model for a summary: it would be an extra upstream call per
fold (cost, latency, one more thing to fail, and a budget to share), and the
core must stay synchronous and deterministic. What the NPC most needs to
remember is what the player told it, in the player's words.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import LIMITS, Npc, Turn

__all__ = ["fold_summary", "remember"]

SEPARATOR = "; "
NOTE_CHARS = 90
MIN_WORDS = 4
_SENTENCE_END = (". ", "! ", "? ", "\n")


def remember(npc: Npc, turn: Turn) -> None:
    """Add ``turn`` (cut to ``LIMITS.turn_chars``) to the NPC's memory; turns
    past the cap fold into the summary."""
    if len(turn.text) > LIMITS.turn_chars:
        turn = Turn(who=turn.who, text=turn.text[: LIMITS.turn_chars])
    dropped = npc.memory.add(turn, LIMITS.npc_memory)
    if dropped:
        npc.summary = fold_summary(npc.summary, dropped, LIMITS.summary_chars)


def fold_summary(summary: str, dropped: Iterable[Turn], limit: int) -> str:
    """``summary`` with notes of the ``dropped`` turns appended, then cut
    from the front (whole notes) to at most ``limit`` characters."""
    notes = [note for turn in dropped if (note := _note(turn))]
    if not notes:
        return summary[:limit]
    parts = (summary.split(SEPARATOR) if summary else []) + notes
    text = SEPARATOR.join(parts)
    while len(text) > limit and len(parts) > 1:
        parts.pop(0)
        text = SEPARATOR.join(parts)
    return text[-limit:] if len(text) > limit else text


def _note(turn: Turn) -> str:
    if turn.who != "player":
        return ""
    # One line, and no separator inside a note, so the summary splits back into notes.
    text = " ".join(turn.text.split()).replace(SEPARATOR, ", ")
    for end in _SENTENCE_END:
        cut = text.find(end)
        if cut > 0:
            text = text[: cut + 1].strip()
    if len(text.split()) < MIN_WORDS:
        return ""
    if len(text) > NOTE_CHARS:
        text = text[: NOTE_CHARS - 1].rsplit(" ", 1)[0] + "\u2026"
    return f'"{text}"'
