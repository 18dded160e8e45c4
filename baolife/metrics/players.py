"""The player directory's and the saver's families: players in memory,
loads, evictions, rows saved and fenced. (The saver's batches are
histograms observed as they happen: :meth:`Metrics.observe_flush`.)"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ..players import Directory, Saver
from . import counter, gauge

__all__ = ["families"]


def families(directory: Directory, saver: Saver) -> Iterator[Metric]:
    """Read ``directory`` and ``saver`` now."""
    ds, ss = directory.statistics(), saver.statistics()
    yield gauge("baolife_players_loaded", "Players held in memory (LRU)", ds.loaded)
    yield gauge("baolife_players_loaded_capacity", "Players the LRU may hold (max_loaded_players)", ds.capacity)
    yield gauge("baolife_players_dirty", "Players with unsaved changes", ds.dirty)
    yield counter("baolife_player_evictions", "Players dropped from memory after being saved", ds.evictions)
    yield counter("baolife_player_loads", "Players loaded from the store", ds.loads)
    yield counter("baolife_player_loads_coalesced", "Logins that waited for a load already under way", ds.coalesced)
    yield counter("baolife_flush_rows", "Player rows saved", ss.rows)
    yield counter("baolife_saves_fenced", "Saves refused because another process owns the player", ss.fenced)
    yield gauge(
        "baolife_unsaved_seconds",
        "Age of the oldest change that may not be saved yet: at most what a crash now loses",
        saver.unsaved_seconds(),
    )
