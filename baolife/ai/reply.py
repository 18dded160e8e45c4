"""What an NPC reply provider promises: :class:`Provider` and its result,
a :class:`Reply` or a :class:`Fallback`.

A provider returns a :class:`Reply`, or a :class:`Fallback` naming the
:class:`FallbackReason` it would not (or could not) ask the model; the
:class:`~baolife.ai.service.NpcService` then answers with a scripted line and
counts the reason. A fallback is a value, not an exception: it is the
expected answer when a budget is spent or the upstream is down. An exception
out of a provider is a fault in our code, also answered in character and
logged (reason ``error``).
"""

from __future__ import annotations

import enum
from typing import Protocol

import attrs

from ..tick.engine import SayJob

__all__ = ["Fallback", "FallbackReason", "Provider", "Reply", "ReplySource"]


class ReplySource(enum.StrEnum):
    """Where a reply came from; the value is the ``source`` metric label."""

    LLM = "llm"  # the model answered this job (an upstream call was made for it)
    SHARED = "shared"  # an identical request already in flight answered it (no extra call)
    CACHE = "cache"  # a cached reply to the same greeting or small talk (no call)
    OFFLINE = "offline"  # the scripted provider, when no API key is configured
    SCRIPTED = "scripted"  # the fallback: budget spent, breaker open, deadline passed, ...


class FallbackReason(enum.StrEnum):
    """Why a job was answered by the scripted fallback. The value is the
    ``reason`` label of ``baolife_npc_fallback_reasons_total``; metrics list
    every member (at zero) so dashboards and alerts see the series from the
    start. :attr:`budget_label` names the budget a refusal spent."""

    BUDGET = "budget"  # the global daily spending budget would be exceeded
    PLAYER_BUDGET = "player_budget"  # the player's daily call budget is spent
    BUDGET_UNKNOWN = "budget_unknown"  # usage not loaded yet, or the shared budget could not be asked (store down)
    USAGE_BACKLOG = "usage_backlog"  # too much usage waits to be written to the store
    BREAKER_OPEN = "breaker_open"  # the circuit breaker is open (or its one probe is out)
    RATE_LIMITED = "rate_limited"  # the upstream said 429 and its Retry-After has not passed
    UPSTREAM_ERROR = "upstream_error"  # retries spent, or an error not worth retrying
    TIMEOUT = "timeout"  # the job's deadline passed
    DISCONNECTED = "disconnected"  # the player left before the reply was ready
    ERROR = "error"  # a fault in our own code (logged with its traceback)

    @property
    def budget_label(self) -> str | None:
        """The ``budget`` label of ``baolife_ai_budget_refusals_total`` for a
        refusal by the cost governor; None for every other reason."""
        return _BUDGET_LABELS.get(self)


_BUDGET_LABELS = {
    FallbackReason.PLAYER_BUDGET: "player",
    FallbackReason.BUDGET: "global",
    FallbackReason.BUDGET_UNKNOWN: "unknown",
    FallbackReason.USAGE_BACKLOG: "backlog",
}


@attrs.frozen
class Reply:
    """An NPC's line and where it came from."""

    text: str
    source: ReplySource


@attrs.frozen
class Fallback:
    """The provider did not get a reply from the model for this job."""

    reason: FallbackReason


class Provider(Protocol):
    """Where NPC replies come from.

    A provider may also have ``async def run(self, *, task_status)`` owning
    its resources and background tasks (connections, usage writes) until
    cancelled; the service starts it first and waits for ``started()``.
    """

    name: str

    async def reply(self, job: SayJob) -> Reply | Fallback:
        """The NPC's reply, or the :class:`Fallback` that has the scripted
        line sent instead. Any exception is a fault, which the service
        contains."""
