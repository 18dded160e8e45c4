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
from .breaker import CLOSED
from .llm import LlmProvider
from .offline import ScriptedProvider
from .reply import Fallback, FallbackReason, Provider, Reply, ReplySource

__all__ = ["NpcService", "NpcStatistics", "UpstreamStatistics"]

log = structlog.get_logger("baolife.ai")

# Queued jobs a worker serves in a row, once woken, before it yields (see
# NpcService._worker).
RUN_OF = 32


@attrs.frozen
class UpstreamStatistics:
    """The LLM path's counts, present when the provider calls an upstream.
    Each field is one ``baolife_ai_*`` metric family of the same name
    (docs/OPERATIONS.md, docs/AI.md)."""

    calls: dict[str, int]  # by outcome: ok, cancelled or an UpstreamError.kind
    retries: int
    cache_hits: int
    cache_misses: int
    cache_entries: int
    cache_capacity: int
    cache_shared_hits: int  # of cache_hits, those from the cache shared by the workers (MySQL)
    cache_shared_errors: int  # lookups and writes of the shared cache that failed
    coalesced: int  # jobs that joined an identical call in flight
    flights: int  # upstream requests in flight now
    budget_refusals: dict[str, int]  # by FallbackReason.budget_label
    breaker_open: bool
    breaker_opens: int
    spend_today: float
    spend_reserved: float
    daily_budget: float
    tokens: dict[str, int]  # by direction: in, out
    usage_pending: int
    usage_pending_limit: int
    settle_failures: int  # shared budget: settlements lost (their calls stay charged at worst)


@attrs.frozen
class NpcStatistics:
    """The service's counts. ``upstream`` is None unless the provider calls
    an upstream (an :class:`~baolife.ai.llm.LlmProvider`)."""

    queued: int
    capacity: int
    workers: int
    busy_workers: int
    replies: int
    fallbacks: int
    sources: dict[ReplySource, int]
    reasons: dict[FallbackReason, int]
    upstream: UpstreamStatistics | None


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
        observe: Callable[[ReplySource, float], None] = lambda source, seconds: None,
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
        self.sources: Counter[ReplySource] = Counter()
        self.reasons: Counter[FallbackReason] = Counter()

    def statistics(self) -> NpcStatistics:
        """The counts now (see :class:`NpcStatistics`)."""
        return NpcStatistics(
            queued=self._send.statistics().current_buffer_used,
            capacity=self.capacity,
            workers=self.workers,
            busy_workers=self.busy_workers,
            replies=self.replies,
            fallbacks=self.sources[ReplySource.SCRIPTED],
            sources=dict(self.sources),
            reasons=dict(self.reasons),
            upstream=self._upstream_statistics(),
        )

    def _upstream_statistics(self) -> UpstreamStatistics | None:
        if not isinstance(self.provider, LlmProvider):
            return None
        st = self.provider.statistics()
        g = st.budget
        return UpstreamStatistics(
            calls=st.upstream,
            retries=st.retries,
            cache_hits=st.cache_hits,
            cache_misses=st.cache_misses,
            cache_entries=st.cache_entries,
            cache_capacity=st.cache_capacity,
            cache_shared_hits=st.cache_shared_hits,
            cache_shared_errors=st.cache_shared_errors,
            coalesced=st.flights.shared,
            flights=st.flights.in_flight,
            budget_refusals={
                reason.budget_label: self.reasons[reason]
                for reason in FallbackReason
                if reason.budget_label is not None
            },
            breaker_open=st.breaker.state != CLOSED,
            breaker_opens=st.breaker.opens,
            spend_today=g.spent,
            spend_reserved=g.reserved,
            daily_budget=g.budget,
            tokens={"in": g.prompt_tokens, "out": g.completion_tokens},
            usage_pending=g.pending_rows,
            usage_pending_limit=g.pending_limit,
            settle_failures=g.settle_failures,
        )

    def fallback_reasons(self) -> dict[str, int]:
        """Scripted fallbacks by reason (the metric label), every reason
        present (at 0)."""
        return {reason.value: self.reasons[reason] for reason in FallbackReason}

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
        recv = self._recv
        async for first in recv:
            await self._serve(first)
            # Jobs that took no time (an offline line, a cache hit) would each
            # cost the worker a pass of the scheduler, which comes about once
            # a tick while the tick loop is busy: 16 workers then served about
            # 160 jobs a second, fewer than 19,500 players ask for. Those
            # already queued are served now, a bounded run of them.
            for _ in range(RUN_OF - 1):
                try:
                    ticket = recv.receive_nowait()
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    return
                await self._serve(ticket)

    async def _serve(self, ticket: _Ticket) -> None:
        """Answer one job and hand the reply back."""
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
        outcome: Reply | Fallback = Fallback(FallbackReason.DISCONNECTED)
        if not ticket.cancelled:
            outcome = Fallback(FallbackReason.TIMEOUT)  # unless the provider answers in time
            with trio.CancelScope() as ticket.scope, trio.move_on_at(ticket.deadline):
                try:
                    outcome = await self.provider.reply(job)
                except Exception:  # a provider fault must not cost the player a reply
                    outcome = Fallback(FallbackReason.ERROR)
                    log.exception("npc_provider_failed", provider=self.provider.name, player=job.player)
            if ticket.cancelled and isinstance(outcome, Fallback):
                outcome = Fallback(FallbackReason.DISCONNECTED)
        seconds = trio.current_time() - started
        if isinstance(outcome, Reply):
            self.sources[outcome.source] += 1
            self.observe(outcome.source, seconds)
            log.debug("npc_reply", player=job.player, npc=job.npc, source=outcome.source, ms=round(seconds * 1000))
            return outcome.text
        self.sources[ReplySource.SCRIPTED] += 1
        self.reasons[outcome.reason] += 1
        self.observe(ReplySource.SCRIPTED, seconds)
        log.info(
            "npc_reply",
            player=job.player,
            npc=job.npc,
            source=ReplySource.SCRIPTED,
            fallback=outcome.reason,
            ms=round(seconds * 1000),
        )
        return self.fallback.line(job)
