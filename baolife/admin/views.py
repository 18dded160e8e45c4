"""What the admin API answers, built from the game's own objects: a
player's page, the export of their data, the day's LLM figures and the
worker's live panel (read from its own ``/metrics``, as a scraper would).

Pure functions of what they are given, except :class:`WorkerPanel`, which
keeps the previous reading to turn counters into rates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from ..ai.budget import utc_day
from ..ai.llm import LlmProvider
from ..ai.service import NpcService
from ..db.store import AccountInfo, Ban
from ..model import LIMITS, Player, dump_player
from ..tick.rules import Rules

__all__ = ["WorkerPanel", "ban_view", "export_document", "life_view", "llm_figures"]


def ban_view(ban: Ban | None, now: float) -> dict[str, Any] | None:
    """A ban as the player's page shows it, or None when there is none in force."""
    if ban is None or (ban.until is not None and ban.until <= now):
        return None
    return {"reason": ban.reason, "until": ban.until, "by": ban.by, "at": ban.at}


def life_view(p: Player, rules: Rules, year_days: int) -> dict[str, Any]:
    """The ``life`` of a player's page: the current life at a glance."""
    content = rules.content
    job = content.jobs.get(p.job or "")
    level = content.levels.get(p.education)
    prompts = []
    for prompt in p.prompts:
        event = content.events.get(prompt.event)
        prompts.append({"id": prompt.id, "title": event.title if event is not None else prompt.event})
    return {
        "number": p.life,
        "age_years": p.age_days // year_days,
        "stage": rules.stage(p.age_days),
        "alive": p.alive,
        "stats": {
            "health": p.stats.health,
            "happiness": p.stats.happiness,
            "smarts": p.stats.smarts,
            "looks": p.stats.looks,
        },
        "money": p.money,
        "job": job.title if job is not None else p.job,
        "education": level.label if level is not None else p.education,
        "flags": sorted(p.flags),
        "npcs": [
            {"id": n.id, "name": n.name, "role": n.role, "relationship": n.closeness, "alive": n.alive} for n in p.npcs
        ],
        "prompts": prompts,
        "feed": [{"age": round(age / year_days, 1), "text": text} for age, text in p.story[-LIMITS.feed :]],
    }


def export_document(
    account: AccountInfo,
    player: Player | None,
    *,
    ban: Ban | None,
    muted: bool,
    ai_usage: list[tuple[str, int, float]],
    now: float,
) -> dict[str, Any]:
    """Everything stored about one player, as one JSON document (a data
    request under the GDPR): the account, the current life whole (the save
    document), every past life kept, every conversation held (NPCs remember
    within a life: past lives keep none) and the NPC usage of every day."""
    doc: dict[str, Any] = {
        "format": "baolife-export-1",
        "exported_at": int(now),
        "account": {
            "id": account.player_id,
            "name": account.name,
            "created_at": account.created_at,
            "last_login": account.last_login,
        },
        "ban": None if ban is None else {"reason": ban.reason, "until": ban.until, "at": ban.at},
        "muted": muted,
        "ai_usage": [{"day": day, "calls": calls, "cost": cost} for day, calls, cost in ai_usage],
        "save": None,
        "lives": [],
        "conversations": [],
    }
    if player is not None:
        doc["save"] = orjson.loads(dump_player(player))["player"]
        doc["lives"] = doc["save"].get("lives", [])
        doc["conversations"] = [
            {
                "life": player.life,
                "npc": n.id,
                "name": n.name,
                "role": n.role,
                "summary": n.summary,
                "turns": n.memory.rows(),
            }
            for n in player.npcs
            if n.memory or n.summary
        ]
    return doc


async def llm_figures(npc: NpcService, default_budget: float) -> dict[str, Any]:
    """The day's LLM figures: over every worker when the budget is shared
    (read now from the store), else this worker's own."""
    provider = npc.provider
    if not isinstance(provider, LlmProvider):
        # Offline (no API key): nothing is spent.
        return {
            "day": utc_day(),
            "calls": 0,
            "cost": 0.0,
            "cache_hit_rate": None,
            "budget": default_budget,
            "budget_left": default_budget,
            "provider": getattr(provider, "name", "offline"),
        }
    usage = await provider.governor.usage_today()
    st = provider.statistics()
    looked = st.cache_hits + st.cache_misses
    return {
        "day": usage.day,
        "calls": usage.calls,
        "cost": round(usage.spent, 6),
        "cache_hit_rate": round(st.cache_hits / looked, 4) if looked else None,
        "budget": usage.budget,
        "budget_left": round(usage.budget_left, 6),
        "provider": getattr(provider, "name", "llm"),
    }


# Metric families the panel reads, by sample name.
_TICK_BUCKET = "baolife_tick_duration_seconds_bucket"
_FLUSH_ROWS = "baolife_flush_rows_total"
_FLUSH_FAILURES = "baolife_flush_failures_total"
_STORE_ERRORS = "baolife_store_errors_total"
_ERRORS_SENT = "baolife_errors_sent_total"


class WorkerPanel:
    """The worker's live figures from its own metrics. Tick percentiles and
    saves per second cover the time since the previous reading (at least
    :attr:`window` seconds back), so the panel shows now, not since start."""

    def __init__(self, render: Callable[[], bytes], window: float = 1.0) -> None:
        self.render = render
        self.window = window
        self._last: tuple[float, dict[float, float], float] | None = None

    def read(self) -> dict[str, Any]:
        """``tick_ms_p50``, ``tick_ms_p99``, ``saves_per_s``, ``save_errors``, ``errors``."""
        now = time.monotonic()
        buckets: dict[float, float] = {}
        totals = {_FLUSH_ROWS: 0.0, _FLUSH_FAILURES: 0.0, _STORE_ERRORS: 0.0, _ERRORS_SENT: 0.0}
        for family in text_string_to_metric_families(self.render().decode()):
            for sample in family.samples:
                if sample.name == _TICK_BUCKET:
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
                elif sample.name in totals:
                    totals[sample.name] += sample.value
        rows = totals[_FLUSH_ROWS]
        since = self._last
        window_buckets, saves_per_s = buckets, 0.0
        if since is not None:
            window_buckets = _minus(buckets, since[1])
            saves_per_s = (rows - since[2]) / max(now - since[0], 1e-3)
        if since is None or now - since[0] >= self.window:
            self._last = (now, buckets, rows)
        if max(window_buckets.values(), default=0.0) <= 0:
            window_buckets = buckets  # no tick since the last reading (stalled?): the whole run
        return {
            "tick_ms_p50": _quantile(window_buckets, 0.5),
            "tick_ms_p99": _quantile(window_buckets, 0.99),
            "saves_per_s": round(saves_per_s, 2),
            "save_errors": int(totals[_FLUSH_FAILURES]),
            "errors": int(totals[_STORE_ERRORS] + totals[_ERRORS_SENT]),
        }


def _minus(now: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: count - before.get(bound, 0.0) for bound, count in now.items()}


def _quantile(buckets: dict[float, float], q: float) -> float:
    """The ``q`` quantile in milliseconds from cumulative histogram buckets:
    the upper bound of the bucket it falls in (the largest finite bound for
    the +Inf bucket), 0 with no observation."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    if total <= 0:
        return 0.0
    finite = [bound for bound, _ in ordered if math.isfinite(bound)]
    for bound, count in ordered:
        if count >= q * total:
            return round(1000 * (bound if math.isfinite(bound) else (finite[-1] if finite else 0.0)), 3)
    return 0.0
