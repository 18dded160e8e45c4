"""NPC replies: a bounded job channel served by a fixed number of workers.

The engine submits a :class:`~baolife.tick.engine.SayJob` with
:meth:`NpcService.submit` (non-blocking; False when the channel is full, so
the player gets ``busy``). A worker asks the provider for the reply under
one deadline per job, counted from the submit (queueing included); if the provider falls back (budget, breaker, ...),
fails, or the deadline passes, the scripted provider answers in character.
Every job ends in exactly one reply, handed back to the tick loop through
``deliver`` - also a job whose player left (:meth:`NpcService.cancel`): its
work stops at once and the scripted line clears the player's "saying"
state in the engine.

Ownership: :meth:`NpcService.run` owns the workers and the provider's
resources (its ``run``, when it has one); cancelling it leaves no AI task
and no open connection behind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import attrs
import structlog
import trio

from ..tick.engine import SayJob
from ..tick.loop import NpcReply
from .llm import LlmProvider
from .offline import ScriptedProvider
from .reply import FALLBACK_REASONS, Fallback, Provider, Reply

__all__ = ["NpcService", "NpcStatistics"]

log = structlog.get_logger("baolife.ai")


@attrs.frozen
class NpcStatistics:
    """The service's counts; the fields after ``reasons`` are None unless the
    provider calls an upstream (they become the ``baolife_ai_*`` metrics)."""

    queued: int
    capacity: int
    workers: int
    busy_workers: int
    replies: int
    fallbacks: int
    sources: dict[str, int]
    reasons: dict[str, int]
    calls: dict[str, int] | None = None
    retries: int | None = None
    cache_hits: int | None = None
    cache_misses: int | None = None
    cache_entries: int | None = None
    cache_capacity: int | None = None
    coalesced: int | None = None
    flights: int | None = None
    budget_refusals: dict[str, int] | None = None
    breaker_open: bool | None = None
    breaker_opens: int | None = None
    spend_today: float | None = None
    spend_reserved: float | None = None
    daily_budget: float | None = None
    tokens: dict[str, int] | None = None
    usage_pending: int | None = None
    usage_pending_limit: int | None = None


@attrs.define(eq=False)
class _Ticket:
    """A job's handle for :meth:`NpcService.cancel`."""

    job: SayJob
    deadline: float
    cancelled: bool = False
    scope: trio.CancelScope | None = None


class NpcService:
    """Workers between the engine's ``say`` jobs and a :class:`Provider`.

    ``observe(source, seconds)`` is called once per reply (source ``llm``,
    ``shared``, ``cache``, ``offline`` or ``scripted``).
    """

    def __init__(
        self,
        provider: Provider,
        fallback: ScriptedProvider,
        *,
        workers: int,
        queue: int,
        timeout: float,
        deliver: Callable[[NpcReply], object],
        observe: Callable[[str, float], None] = lambda source, seconds: None,
    ) -> None:
        self.provider = provider
        self.fallback = fallback
        self.workers = workers
        self.capacity = queue
        self.timeout = timeout
        self.deliver = deliver
        self.observe = observe
        self._send, self._recv = trio.open_memory_channel[_Ticket](queue)
        # player -> their jobs queued or running (one, but a new life may overlap the old one's).
        self._tickets: dict[int, list[_Ticket]] = {}
        self.busy_workers = 0
        self.replies = 0
        self.sources: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def statistics(self) -> NpcStatistics:
        base = NpcStatistics(
            queued=self._send.statistics().current_buffer_used,
            capacity=self.capacity,
            workers=self.workers,
            busy_workers=self.busy_workers,
            replies=self.replies,
            fallbacks=self.sources["scripted"],
            sources=dict(self.sources),
            reasons=dict(self.reasons),
        )
        if not isinstance(self.provider, LlmProvider):
            return base
        st = self.provider.statistics()
        g, r = st.budget, self.reasons
        return attrs.evolve(
            base,
            calls=st.upstream,
            retries=st.retries,
            cache_hits=st.cache_hits,
            cache_misses=st.cache_misses,
            cache_entries=st.cache_entries,
            cache_capacity=st.cache_capacity,
            coalesced=st.flights.shared,
            flights=st.flights.in_flight,
            budget_refusals={
                "player": r["player_budget"],
                "global": r["budget"],
                "unknown": r["budget_unknown"],
                "backlog": r["usage_backlog"],
            },
            breaker_open=st.breaker.state != "closed",
            breaker_opens=st.breaker.opens,
            spend_today=g.spent,
            spend_reserved=g.reserved,
            daily_budget=g.budget,
            tokens={"in": g.prompt_tokens, "out": g.completion_tokens},
            usage_pending=g.pending_rows,
            usage_pending_limit=g.pending_limit,
        )

    def fallback_reasons(self) -> dict[str, int]:
        """Scripted fallbacks by reason, every known reason present (at 0)."""
        return dict.fromkeys(FALLBACK_REASONS, 0) | dict(self.reasons)

    def submit(self, job: SayJob) -> bool:
        """Queue a job without blocking; False when the channel is full."""
        # The deadline runs from now: time spent queued is time the player waits.
        ticket = _Ticket(job, trio.current_time() + self.timeout)
        try:
            self._send.send_nowait(ticket)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        self._tickets.setdefault(job.player, []).append(ticket)
        return True

    def cancel(self, player: int) -> None:
        """The player left: stop their jobs now (they are answered with the
        scripted line, which the engine drops for an offline player)."""
        for ticket in self._tickets.get(player, ()):
            ticket.cancelled = True
            if ticket.scope is not None:
                ticket.scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the provider and the workers until cancelled."""
        async with trio.open_nursery() as nursery:
            run = getattr(self.provider, "run", None)
            if run is not None:
                await nursery.start(run)
            for _ in range(self.workers):
                nursery.start_soon(self._worker)
            task_status.started()

    async def _worker(self) -> None:
        async for ticket in self._recv:
            job = ticket.job
            self.busy_workers += 1
            try:
                text = await self._answer(ticket)
            finally:
                self.busy_workers -= 1
                tickets = self._tickets.get(job.player)
                if tickets is not None:
                    tickets.remove(ticket)
                    if not tickets:
                        del self._tickets[job.player]
            self.replies += 1
            self.deliver(NpcReply(player=job.player, life=job.life, npc=job.npc, ref=job.ref, text=text))

    async def _answer(self, ticket: _Ticket) -> str:
        job = ticket.job
        started = trio.current_time()
        reply = None
        reason = "disconnected"
        if not ticket.cancelled:
            with trio.CancelScope() as ticket.scope, trio.move_on_at(ticket.deadline):
                reason = "timeout"
                try:
                    reply = await self.provider.reply(job)
                except Fallback as exc:
                    reason = exc.reason
                except Exception:  # a provider fault must not cost the player a reply
                    reason = "error"
                    log.exception("npc_provider_failed", provider=self.provider.name, player=job.player)
            if ticket.cancelled and reply is None:
                reason = "disconnected"
        seconds = trio.current_time() - started
        if isinstance(reply, str):
            reply = Reply(reply, self.provider.name)
        if reply is not None:
            self.sources[reply.source] += 1
            self.observe(reply.source, seconds)
            log.debug("npc_reply", player=job.player, npc=job.npc, source=reply.source, ms=round(seconds * 1000))
            return reply.text
        self.sources["scripted"] += 1
        self.reasons[reason] += 1
        self.observe("scripted", seconds)
        log.info(
            "npc_reply", player=job.player, npc=job.npc, source="scripted", fallback=reason, ms=round(seconds * 1000)
        )
        return self.fallback.line(job)
