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
resources (:meth:`~baolife.ai.reply.Provider.run`); cancelling it leaves no
AI task and no open connection behind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import attrs
import structlog
import trio
from prometheus_client.core import GaugeMetricFamily, Metric

from ..obs import counter, gauge
from ..tick.engine import SayJob
from ..tick.loop import NpcReply
from .llm import LlmProvider
from .offline import ScriptedProvider
from .reply import FALLBACK_REASONS, Fallback, Provider

__all__ = ["NpcService", "NpcStatistics"]

log = structlog.get_logger("baolife.ai")


@attrs.frozen
class NpcStatistics:
    queued: int
    capacity: int
    workers: int
    busy_workers: int
    replies: int
    fallbacks: int
    sources: dict[str, int]
    reasons: dict[str, int]


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
        return NpcStatistics(
            queued=self._send.statistics().current_buffer_used,
            capacity=self.capacity,
            workers=self.workers,
            busy_workers=self.busy_workers,
            replies=self.replies,
            fallbacks=self.sources["scripted"],
            sources=dict(self.sources),
            reasons=dict(self.reasons),
        )

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
            await nursery.start(self.provider.run)
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

    # ----------------------------------------------------------------- metrics

    def collect(self) -> Iterable[Metric]:
        """Metric families of the NPC replies and, when the provider keeps
        them, of its upstream calls, cache, breaker and budgets."""
        ns = self.statistics()
        reasons = dict.fromkeys(FALLBACK_REASONS, 0) | ns.reasons
        yield counter(
            "baolife_npc_fallback_reasons",
            "NPC replies answered by the scripted fallback, by reason",
            reasons,
            "reason",
        )
        yield counter(
            "baolife_npc_reply_sources",
            "NPC replies by source (llm, shared, cache, offline, scripted)",
            ns.sources,
            "source",
        )
        if not isinstance(self.provider, LlmProvider):
            return
        st = self.provider.statistics()
        yield counter("baolife_ai_upstream_calls", "Upstream chat/completions calls by result", st.upstream, "result")
        yield counter("baolife_ai_retries", "Upstream calls that were retries", st.retries)
        yield counter("baolife_ai_cache_hits", "Small-talk replies served from the cache", st.cache_hits)
        yield counter("baolife_ai_cache_misses", "Small-talk replies not in the cache", st.cache_misses)
        yield gauge("baolife_ai_cache_entries", "Replies in the cache", st.cache_entries)
        yield gauge("baolife_ai_cache_capacity", "Cache size (ai_cache_size)", st.cache_capacity)
        yield gauge("baolife_ai_flights", "Upstream requests in flight (after single-flight)", st.flights.in_flight)
        yield counter(
            "baolife_ai_shared_replies", "Replies shared from an identical request in flight", st.flights.shared
        )
        b = st.breaker
        states = GaugeMetricFamily(
            "baolife_ai_breaker_state", "1 for the circuit breaker's current state", labels=["state"]
        )
        for state in ("closed", "half_open", "open"):
            states.add_metric([state], 1.0 if b.state == state else 0.0)
        yield states
        yield counter("baolife_ai_breaker_opens", "Times the circuit breaker opened", b.opens)
        yield counter("baolife_ai_breaker_refused", "Calls refused by the breaker or a Retry-After hold", b.refused)
        g = st.budget
        yield gauge(
            "baolife_ai_spend_today",
            "Upstream spend of the UTC day so far, all processes (currency of the prices)",
            g.spent,
        )
        yield gauge("baolife_ai_spend_reserved", "Worst-case cost of the calls in flight", g.reserved)
        yield gauge("baolife_ai_daily_budget", "Daily spending budget (ai_daily_budget)", g.budget)
        yield counter("baolife_ai_spend", "Upstream spend by this process", g.spent_total)
        yield counter("baolife_ai_prompt_tokens", "Prompt tokens billed", g.prompt_tokens)
        yield counter("baolife_ai_completion_tokens", "Completion tokens billed", g.completion_tokens)
        yield gauge("baolife_ai_usage_pending_rows", "AI usage rows waiting to be written to the store", g.pending_rows)
        yield gauge(
            "baolife_ai_usage_pending_limit", "Usage rows that may wait before calls are refused", g.pending_limit
        )
        yield gauge(
            "baolife_ai_usage_loaded", "1 once today's usage is loaded from the store", 1.0 if g.loaded else 0.0
        )
