"""NPC replies from an OpenAI-compatible LLM: cached, shared, budgeted, retried, broken.

One job goes through, in order:

1. **cache** - greetings and small talk (:func:`~baolife.ai.prompt.small_talk`)
   are answered from the :class:`~baolife.ai.cache.ReplyCache` (bounded
   TTL/LRU, and shared by the workers on one MySQL/MariaDB) keyed by persona,
   role, life stage, closeness band and intent; such a reply holds nothing private.
2. **single-flight** - a miss joins an identical request already in flight
   (:class:`~baolife.ai.flight.SingleFlight`), or starts one.
3. In the flight, each attempt first asks the **breaker** (open, or a 429's
   Retry-After not passed: fallback) and the **cost governor** (a player's
   calls or the day's spend used up: fallback; with workers sharing a
   database the reservation is made there, awaited here in the AI path and
   never in the tick), then calls the upstream.
4. **retries**: at most ``retries`` more attempts, only after a timeout, a
   connection error, a 429 or a 5xx; the wait is exponential with jitter,
   at least the Retry-After, and never past the job's deadline (the job
   falls back at once instead of waiting for nothing). Each attempt may use
   half of the job's time, so a hung call leaves room for one retry.

Errors keep one form per layer (see :mod:`baolife.ai`): the client raises
:class:`~baolife.ai.client.UpstreamError`; :meth:`LlmProvider._attempts`
catches it, the one place that turns it into a retry or the job's
:class:`Fallback`; from there up a job's outcome is a value,
``str | Fallback`` through the flight and :class:`Reply` or
:class:`Fallback` to the service, which answers a fallback with a scripted
line. Counters for metrics are in :meth:`LlmProvider.statistics`.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from functools import partial
from typing import Any

import attrs
import orjson
import structlog
import trio

from ..config import Settings
from ..content.schema import Content
from ..db.store import Store
from ..tick.engine import SayJob
from . import prompt
from .breaker import BreakerStatistics, CircuitBreaker
from .budget import BudgetStatistics, CostGovernor, Grant
from .cache import ReplyCache
from .client import ChatClient, Completion, UpstreamError, UpstreamRateLimited, UpstreamRejected, UpstreamTimeout
from .flight import FlightStatistics, SingleFlight
from .reply import Fallback, FallbackReason, Reply, ReplySource

__all__ = ["LlmProvider", "LlmStatistics"]

log = structlog.get_logger("baolife.ai")

BACKOFF_BASE = 0.5
BACKOFF_MAX = 4.0
# Outcomes of an upstream call besides UpstreamError.kind (the ``outcome``
# label of baolife_ai_calls_total).
CALL_OK = "ok"
CALL_CANCELLED = "cancelled"
# Seconds between usage writes when none is given (serve passes save_interval).
FLUSH_INTERVAL = 5.0
# Usage rows that may wait for the store: at least this many, and at least
# one per player the server may hold (each row is one (day, player)).
USAGE_PENDING_FLOOR = 10_000
# Closing the HTTP client on shutdown may take this long (shielded).
CLOSE_SECONDS = 2.0
# 4xx statuses that say our configuration is wrong (every call will fail
# alike): they count toward the breaker; other 4xx are about one request.
_CONFIG_STATUSES = frozenset({401, 402, 403, 404})
# The store kind that several workers may share: the budget and the reply
# cache live in it. SQLite serves one worker, which keeps them in memory.
SHARED_STORE_KIND = "mysql"


@attrs.frozen
class LlmStatistics:
    """The provider's counts: calls by outcome (``ok``, ``cancelled`` or an
    :attr:`UpstreamError.kind`), retries, the cache, and the flights',
    breaker's and cost governor's own statistics."""

    upstream: dict[str, int]
    retries: int
    cache_hits: int
    cache_misses: int
    cache_entries: int
    cache_capacity: int
    cache_shared_hits: int  # of cache_hits, those from the level shared by the workers
    cache_shared_errors: int
    flights: FlightStatistics
    breaker: BreakerStatistics
    budget: BudgetStatistics


class LlmProvider:
    """The :class:`~baolife.ai.reply.Provider` backed by an OpenAI-compatible
    API; see the module docstring. ``store`` receives the usage rows
    (write-behind every ``flush_interval``); ``backoff_base`` and
    ``backoff_max`` are seconds (benchmarks shrink them to compress time)."""

    name = "openai"

    def __init__(
        self,
        client: ChatClient,
        content: Content,
        governor: CostGovernor,
        breaker: CircuitBreaker,
        *,
        store: Store | None,
        model: str,
        max_tokens: int,
        context_turns: int,
        retries: int,
        timeout: float,
        cache_size: int,
        cache_ttl: float,
        flush_interval: float = FLUSH_INTERVAL,
        backoff_base: float = BACKOFF_BASE,
        backoff_max: float = BACKOFF_MAX,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.content = content
        self.governor = governor
        self.breaker = breaker
        self.store = store
        self.model = model
        self.max_tokens = max_tokens
        self.context_turns = context_turns
        self.retries = retries
        self.timeout = timeout
        self.attempt_timeout = timeout / 2 if retries else timeout
        self.flush_interval = flush_interval
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rng = rng or random.Random()  # noqa: S311 - backoff jitter, not secrets
        # Shared by the workers when the governor's is (one MySQL/MariaDB).
        self.cache = ReplyCache(cache_size, cache_ttl, model=model, store=governor.ledger)
        self.flights = SingleFlight()
        self.upstream: Counter[str] = Counter()
        self.retried = 0

    @classmethod
    def from_settings(cls, settings: Settings, content: Content, store: Store | None) -> LlmProvider:
        """The provider as ``baolife serve`` configures it: on MySQL/MariaDB
        (workers may share it) the budget and the reply cache are shared
        through the store; on SQLite (one worker) they are kept in memory."""
        s = settings
        client = ChatClient(s.ai_base_url, s.ai_api_key, max_connections=s.ai_workers, timeout=s.ai_timeout)
        governor = CostGovernor(
            player_daily_calls=s.ai_player_daily_calls,
            daily_budget=s.ai_daily_budget,
            price_in=s.ai_price_in,
            price_out=s.ai_price_out,
            pending_limit=max(USAGE_PENDING_FLOOR, s.max_loaded_players),
            ledger=store if store is not None and store.kind == SHARED_STORE_KIND else None,
        )
        breaker = CircuitBreaker(failures=s.ai_breaker_failures, cooldown=s.ai_breaker_cooldown)
        return cls(
            client,
            content,
            governor,
            breaker,
            store=store,
            model=s.ai_model,
            max_tokens=s.ai_max_tokens,
            context_turns=s.ai_context_turns,
            retries=s.ai_retries,
            timeout=s.ai_timeout,
            cache_size=s.ai_cache_size,
            cache_ttl=s.ai_cache_ttl,
            flush_interval=s.save_interval,
        )

    def statistics(self) -> LlmStatistics:
        """The counts now (see :class:`LlmStatistics`)."""
        cache = self.cache.statistics()
        return LlmStatistics(
            upstream=dict(self.upstream),
            retries=self.retried,
            cache_hits=cache.hits + cache.shared_hits,
            cache_misses=cache.misses,
            cache_entries=cache.entries,
            cache_capacity=cache.capacity,
            cache_shared_hits=cache.shared_hits,
            cache_shared_errors=cache.shared_errors,
            flights=self.flights.statistics(),
            breaker=self.breaker.statistics(),
            budget=self.governor.statistics(),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the HTTP client, the flights, the usage writes and the shared
        cache's writes until cancelled; then write the usage left (every
        flight has settled by then) and close the connections."""
        try:
            async with trio.open_nursery() as nursery:
                self.flights.bind(nursery)
                await nursery.start(self.cache.run)
                if self.store is not None:
                    await nursery.start(partial(self.governor.run, self.store, interval=self.flush_interval))
                else:
                    self.governor.loaded = True  # nothing to load: a benchmark or a unit test
                task_status.started()
                await trio.sleep_forever()  # the nursery must stay open for flights
        finally:
            if self.store is not None:
                await self.governor.close(self.store)
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_SECONDS):
                await self.client.aclose()

    # ----------------------------------------------------------------- one job

    async def reply(self, job: SayJob) -> Reply | Fallback:
        """The NPC's reply to ``job``, or why the model was not asked (see
        the module docstring)."""
        persona = prompt.persona_of(self.content, job)
        intent = prompt.small_talk(job.text, job.npc_name)
        key: Any
        if intent is not None:
            key = prompt.cache_key(job, persona, intent)
            cached = await self.cache.get(key)
            if cached is not None:
                return Reply(cached, ReplySource.CACHE)
        messages = prompt.messages_for(job, persona, context_turns=self.context_turns, intent=intent)
        body = prompt.request_body(self.model, messages, max_tokens=self.max_tokens, user=f"player-{job.player}")
        if intent is None:
            # Identical means the same bytes upstream, user field aside.
            key = hashlib.blake2b(orjson.dumps(messages), digest_size=16).digest()
        bound = prompt.prompt_token_bound(messages)
        # The flight runs in another task: hand it this job's deadline.
        deadline = min(trio.current_effective_deadline(), trio.current_time() + self.timeout)
        text, shared = await self.flights.run(key, lambda: self._flight(job.player, body, bound, deadline))
        if isinstance(text, Fallback):
            return text
        if intent is not None:
            self.cache.put(key, text)
        return Reply(text, ReplySource.SHARED if shared else ReplySource.LLM)

    async def _flight(self, player: int, body: dict[str, Any], bound: int, deadline: float) -> str | Fallback:
        tries = _Tries()
        try:
            with trio.move_on_at(deadline):
                return await self._attempts(player, body, bound, tries)
            return Fallback(FallbackReason.TIMEOUT)
        finally:
            # The deadline passed inside a call or a backoff wait: seen above,
            # or as a cancel when the waiters' equal deadline fired first. A
            # cancel before the deadline (the player left) is no verdict.
            if tries.made and not (tries.failed or tries.succeeded) and trio.current_time() >= deadline:
                self.breaker.failure(trio.current_time())

    async def _attempts(self, player: int, body: dict[str, Any], bound: int, tries: _Tries) -> str | Fallback:
        """The reply text, or the fallback once no attempt is left. Catches
        the client's :class:`UpstreamError`: here each one becomes a retry
        or the job's verdict."""
        deadline = trio.current_effective_deadline()
        for attempt in range(self.retries + 1):
            now = trio.current_time()
            grant: Grant | FallbackReason | None = self.breaker.allow(now)
            if grant is None:
                grant = await self.governor.reserve(player, bound, self.max_tokens)
                if isinstance(grant, FallbackReason):
                    self.breaker.abandon()  # a probe that will not be made
            if isinstance(grant, FallbackReason):
                # Refused before any call: nothing was tried. After a failed
                # attempt: the job failed upstream.
                return self._failed(grant, tries) if tries.made else Fallback(grant)
            try:
                # Cancelled while the (shielded) reservation was made: the
                # request never left, so it cost nothing.
                await trio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                self.governor.settle_unbilled(grant)
                self.breaker.abandon()
                raise
            tries.made += 1
            try:
                completion = await self._attempt(grant, body, min(deadline, now + self.attempt_timeout))
            except UpstreamError as exc:
                log.debug("npc_upstream_failed", kind=exc.kind, error=str(exc), attempt=attempt)
                if isinstance(exc, UpstreamRejected) and exc.status not in _CONFIG_STATUSES:
                    # About this one request, not the upstream's health.
                    self.breaker.abandon()
                    return Fallback(FallbackReason.UPSTREAM_ERROR)
                if not exc.retryable:
                    return self._failed(FallbackReason.UPSTREAM_ERROR, tries)
                reason = FallbackReason.UPSTREAM_ERROR
                delay = self._backoff(attempt)
                if isinstance(exc, UpstreamRateLimited):
                    reason = FallbackReason.RATE_LIMITED
                    if exc.retry_after is not None:
                        self.breaker.hold(trio.current_time() + exc.retry_after)
                        delay = max(delay, exc.retry_after)
                if attempt == self.retries or trio.current_time() + delay >= deadline:
                    # No retry left, or waiting would outlast the job: answer now.
                    return self._failed(reason, tries)
                self.retried += 1
                await trio.sleep(delay)
            else:
                tries.succeeded = True
                return completion.text
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def _failed(self, reason: FallbackReason, tries: _Tries) -> Fallback:
        """The job's upstream attempts all failed: it counts toward the breaker."""
        tries.failed = True
        self.breaker.failure(trio.current_time())
        return Fallback(reason)

    async def _attempt(self, grant: Grant, body: dict[str, Any], until: float) -> Completion:
        """One upstream call, settled with the governor however it ends.
        Raises :class:`UpstreamError` (a call past ``until`` is an
        :class:`UpstreamTimeout`)."""
        try:
            with trio.move_on_at(until):
                completion = await self.client.complete(body)
                self.governor.settle(grant, completion.prompt_tokens, completion.completion_tokens)
                self.upstream[CALL_OK] += 1
                self.breaker.success()
                return completion
            raise UpstreamTimeout("attempt timed out", maybe_billed=True)
        except UpstreamError as exc:
            if exc.maybe_billed:
                self.governor.settle_worst(grant)
            else:
                self.governor.settle_unbilled(grant)
            self.upstream[exc.kind] += 1
            raise
        except BaseException:
            # Cancelled from outside (deadline, player gone, shutdown) after
            # the request may have been sent: charge the worst case.
            self.governor.settle_worst(grant)
            self.upstream[CALL_CANCELLED] += 1
            self.breaker.abandon()
            raise

    def _backoff(self, attempt: int) -> float:
        """Exponential with "equal jitter": half fixed, half random, so
        retries of many jobs spread out but never bunch at zero."""
        ceiling = min(self.backoff_max, self.backoff_base * math.pow(2, attempt))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


@attrs.define
class _Tries:
    made: int = 0
    succeeded: bool = False
    failed: bool = False
