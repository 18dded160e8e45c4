"""The life story: every line the player was told, with the age it happened.

The story is kept on the server, bounded (:data:`~baolife.model.LIMITS`
``story``); key moments (jobs, schooling, family, assets, illness) are kept
apart in ``Player.moments`` so they outlive the story's roll-over and make
the end-of-life page. Line numbers count from the oldest line kept, as the
``story`` op gives them to the client.
"""

from __future__ import annotations

import sys
from typing import Any

from ..model import LIMITS, Player

__all__ = ["PAGE_LINES", "SNAPSHOT_LINES", "page", "record", "tail"]

# Lines of one ``story`` op, and of the story the snapshot carries.
PAGE_LINES = 50
SNAPSHOT_LINES = 30


def record(p: Player, text: str, *, key: bool = False) -> tuple[int, str]:
    """Add ``text`` to the story at the player's age (a key moment too when
    ``key``) and return the line as kept."""
    if len(text) > LIMITS.story_chars:
        text = text[: LIMITS.story_chars - 1] + "…"
    # Interned: most lines are the content's fixed sentences, kept once for
    # every life that tells them (see model._story).
    age, text = p.age_days, sys.intern(text)
    p.story.add(age, text, LIMITS.story)
    line = (age, text)
    if key:
        moments = p.moments
        moments.add(age, text)
        if len(moments) > LIMITS.moments:
            # Keep how the life began (the first half) and how it went lately:
            # drop the oldest of the later moments.
            del moments[LIMITS.moments // 2]
    return line


def tail(p: Player, lines: int = SNAPSHOT_LINES) -> list[list[Any]]:
    """The newest ``lines`` of the story as ``[age_days, text]``, oldest first."""
    return p.story.rows(-lines) if lines > 0 else []


def page(p: Player, before: int | None) -> tuple[int, list[list[Any]]]:
    """Up to :data:`PAGE_LINES` lines ending before line ``before`` (default:
    the newest; a number past the end counts as the end): the number of the
    first line given and the lines, oldest first."""
    total = len(p.story)
    end = total if before is None else min(before, total)
    first = max(0, end - PAGE_LINES)
    return first, p.story.rows(first, end)
