"""The AI layer's families: the NPC reply queue and workers, fallbacks,
and the upstream client's cache, breaker, budgets and tokens where the
provider reports them. (Replies are observed as they happen:
:meth:`Metrics.observe_npc`.)"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ..ai.service import NpcService
from . import OptionalFamily, counter, gauge, optional_families

__all__ = ["AI_OPTIONAL", "families"]

# Fields of NpcService.statistics().upstream, present only with an upstream client
# (an API key); docs/OPERATIONS.md marks them ¹ and docs/AI.md explains them.
AI_OPTIONAL: tuple[OptionalFamily, ...] = (
    ("calls", "baolife_ai_calls", "counter:outcome", "Upstream AI calls, by outcome"),
    ("cache_hits", "baolife_ai_cache_hits", "counter", "NPC replies served from the response cache"),
    ("cache_misses", "baolife_ai_cache_misses", "counter", "NPC replies not in the response cache"),
    ("coalesced", "baolife_ai_coalesced", "counter", "NPC jobs that joined an identical call in flight"),
    ("budget_refusals", "baolife_ai_budget_refusals", "counter:budget", "Calls not made: a budget was spent"),
    ("breaker_open", "baolife_ai_breaker_open", "gauge", "1 while the circuit breaker stops upstream calls"),
    ("spend_today", "baolife_ai_spend_today", "gauge", "Upstream spend so far this UTC day"),
    ("daily_budget", "baolife_ai_daily_budget", "gauge", "Upstream spend allowed per UTC day"),
    ("tokens", "baolife_ai_tokens", "counter:direction", "Upstream tokens, by direction (in, out)"),
    ("retries", "baolife_ai_retries", "counter", "Upstream calls that were retries"),
    ("cache_entries", "baolife_ai_cache_entries", "gauge", "Replies in the response cache"),
    ("cache_capacity", "baolife_ai_cache_capacity", "gauge", "Response cache size (ai_cache_size)"),
    ("flights", "baolife_ai_flights", "gauge", "Upstream requests in flight after single-flight"),
    ("breaker_opens", "baolife_ai_breaker_opens", "counter", "Times the circuit breaker opened"),
    ("spend_reserved", "baolife_ai_spend_reserved", "gauge", "Worst-case cost of the upstream calls in flight"),
    ("usage_pending", "baolife_ai_usage_pending", "gauge", "AI usage rows waiting to be written to the store"),
    ("usage_pending_limit", "baolife_ai_usage_pending_limit", "gauge", "Usage rows that may wait before calls stop"),
    ("cache_shared_hits", "baolife_ai_cache_shared_hits", "counter", "Cache hits from the cache shared by workers"),
    ("cache_shared_errors", "baolife_ai_cache_shared_errors", "counter", "Shared reply cache reads/writes that failed"),
    ("settle_failures", "baolife_ai_settle_failures", "counter", "Shared budget settlements lost (charged at worst)"),
)


def families(npc: NpcService) -> Iterator[Metric]:
    """Read ``npc`` (and, through it, its provider) now."""
    ns = npc.statistics()
    yield gauge("baolife_npc_queue", "NPC reply jobs waiting", ns.queued)
    yield gauge("baolife_npc_queue_capacity", "NPC reply job channel size (ai_queue)", ns.capacity)
    yield gauge("baolife_npc_workers_busy", "NPC workers on a job", ns.busy_workers)
    yield counter("baolife_npc_fallbacks", "NPC replies answered by the scripted fallback", ns.fallbacks)
    yield counter("baolife_npc_fallback_reasons", "Scripted fallbacks by reason", npc.fallback_reasons(), "reason")
    yield from optional_families(ns.upstream, AI_OPTIONAL)
