"""The tick loop's and the engine's families: ticks, players online, ops
and errors sent, game days, life events and prompts."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ..tick.engine import World
from ..tick.loop import Inbox, TickLoop
from . import counter, gauge

__all__ = ["families"]


def families(loop: TickLoop, world: World, inbox: Inbox) -> Iterator[Metric]:
    """Read ``loop``, ``world`` and ``inbox`` now."""
    ls, wst = loop.statistics(), world.statistics()
    yield counter("baolife_ticks", "Ticks run", ls.tick)
    yield counter("baolife_tick_overruns", "Ticks that ended after their deadline", ls.overruns)
    yield gauge("baolife_players_online", "Players logged in on a connection", ls.online)
    yield counter("baolife_ops_sent", "Ops sent in frames, by kind", ls.ops, "kind")
    # The loop refuses some commands itself (before the engine sees them):
    # one family, whoever sent the error.
    errors = dict(loop.error_counts)
    for code, n in world.error_counts.items():
        errors[code] = errors.get(code, 0) + n
    yield counter("baolife_errors_sent", "error ops sent, by code", errors, "code")
    yield gauge("baolife_inbox_items", "Items waiting for the next tick", len(inbox))
    yield counter("baolife_player_days", "Game days lived", wst.player_days)
    yield counter("baolife_event_checks", "Random-event checks", wst.checks)
    yield counter("baolife_event_evaluations", "Event conditions evaluated", wst.evaluations)
    yield counter("baolife_events_fired", "Life events that happened", wst.events_fired)
    yield counter("baolife_prompts_opened", "Prompts put to players", wst.prompts_opened)
    yield counter("baolife_prompts_answered", "Prompts a player answered", wst.prompts_answered)
    yield counter("baolife_prompts_expired", "Prompts closed with their default choice", wst.prompts_expired)
    yield counter("baolife_deaths", "Lives ended", wst.deaths)
    yield counter("baolife_busy_days", "Game days run in full (the rest were quiet, run in bulk)", wst.busy_days)
    yield counter("baolife_fast_forward_days", "Extra game days run by fast-forward", wst.fast_forward_days)
    yield counter(
        "baolife_fast_forward_refused", "Fast-forward steps run at x1 for the tick's budget", wst.fast_forward_refused
    )
