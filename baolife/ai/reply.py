"""What an NPC reply provider promises: :class:`Provider`, :class:`Reply`, :class:`Fallback`.

A provider either returns a :class:`Reply` or raises :class:`Fallback` with
the reason it would not (or could not) ask the model; the
:class:`~baolife.ai.service.NpcService` then answers with a scripted line and
counts the reason. Any other exception is a fault, also answered in
character and logged.

Reply sources::

    llm       the model answered this job (an upstream call was made for it)
    shared    an identical request already in flight answered it (no extra call)
    cache     a cached reply to the same greeting or small talk (no call)
    offline   the scripted provider, when no API key is configured
    scripted  the fallback: budget spent, breaker open, deadline passed, ...
"""

from __future__ import annotations

from typing import Protocol

import attrs

from ..tick.engine import SayJob

__all__ = ["FALLBACK_REASONS", "Fallback", "Provider", "Reply"]

# Every reason a job may be answered by the scripted fallback; metrics list
# them all (at zero) so dashboards and alerts see the series from the start.
FALLBACK_REASONS = (
    "budget",  # the global daily spending budget would be exceeded
    "player_budget",  # the player's daily call budget is spent
    "budget_unknown",  # today's usage is not loaded yet (store unreachable at start)
    "usage_backlog",  # too much usage waits to be written to the store
    "breaker_open",  # the circuit breaker is open (or its one probe is out)
    "rate_limited",  # the upstream said 429 and its Retry-After has not passed
    "upstream_error",  # retries spent, or an error not worth retrying
    "timeout",  # the job's deadline passed
    "disconnected",  # the player left before the reply was ready
    "error",  # a fault in our own code (logged with its traceback)
)


@attrs.frozen
class Reply:
    """An NPC's line and where it came from (see the module docstring)."""

    text: str
    source: str


class Fallback(Exception):  # noqa: N818 - a decision, not an error of the caller
    """The provider will not ask the model for this job; ``reason`` is one of
    :data:`FALLBACK_REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Provider(Protocol):
    """Where NPC replies come from.

    A provider may also have ``async def run(self, *, task_status)`` owning
    its resources and background tasks (connections, usage writes) until
    cancelled; the service starts it first and waits for ``started()``.
    """

    name: str

    async def reply(self, job: SayJob) -> Reply | str:
        """The NPC's reply (a plain ``str`` counts as source ``name``).
        Raises :class:`Fallback` to have the scripted line sent instead; may
        raise anything else, which the service contains."""
