"""Metrics: the app's Prometheus registry and the helpers of its collectors.

One :class:`Metrics` per app with its own registry (no globals). Hot-path
measurements (tick duration, flushes, store calls, NPC replies, collector
pauses) are observed directly, through callbacks the components are given.
Everything that is a count or level kept by a component is read from that
component's ``statistics()`` at scrape time, so the game pays nothing for it
between scrapes: each area has its collector module here
(:mod:`.tick`, :mod:`.players`, :mod:`.store`, :mod:`.net`, :mod:`.ai`,
:mod:`.process`) yielding its own families, and the app adds them as
sources. The components themselves import nothing of Prometheus (the tick
core stays free of it).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__

__all__ = [
    "GcTimer",
    "Metrics",
    "OptionalFamily",
    "StatsSource",
    "counter",
    "gauge",
    "optional_families",
]

StatsSource = Callable[[], Iterable[Metric]]


class _StatsCollector(Collector):
    def __init__(self, sources: list[StatsSource]) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        for source in self.sources:
            yield from source()


def gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    """A gauge family with one sample, for scrape-time collectors."""
    if labels:
        fam = GaugeMetricFamily(name, doc, labels=list(labels))
        fam.add_metric(list(labels.values()), value)
        return fam
    return GaugeMetricFamily(name, doc, value=value)


def counter(name: str, doc: str, value: float | Mapping[str, float], label: str = "") -> CounterMetricFamily:
    """A counter family (``value`` by label value when ``label`` is given)."""
    if label and isinstance(value, dict):
        fam = CounterMetricFamily(name, doc, labels=[label])
        for key, v in sorted(value.items()):
            fam.add_metric([key], v)
        return fam
    return CounterMetricFamily(name, doc, value=float(value))  # type: ignore[arg-type]


# One row of a table of optional families: (statistics field, metric name,
# kind, help). ``kind`` is ``gauge``, ``counter`` or ``counter:LABEL`` (the
# field is a mapping by that label).
OptionalFamily = tuple[str, str, str, str]


def optional_families(stats: object, table: Iterable[OptionalFamily]) -> Iterator[Metric]:
    """The families of ``table`` whose field ``stats`` has (and is not None):
    for components whose ``statistics()`` grow fields over time (the store's
    pool, the AI layer), so each family appears once its field exists."""
    for field, name, kind, doc in table:
        value: Any = getattr(stats, field, None)
        if value is None:
            continue
        if kind == "gauge":
            yield gauge(name, doc, float(value))
        else:
            yield counter(name, doc, value, kind.partition(":")[2])


class Metrics:
    """The app's metrics registry; :meth:`render` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.tick_seconds = Histogram(
            "baolife_tick_duration_seconds",
            "CPU time of one tick (commands, days, frames)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=r,
        )
        self.tick_late = Histogram(
            "baolife_tick_wake_late_seconds",
            "How late the tick loop woke for a tick (scheduling delay)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=r,
        )
        self.gc_pause = Histogram(
            "baolife_gc_pause_seconds",
            "Wall time of one pass of Python's cyclic garbage collector, by generation (the process stops)",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=r,
        )
        self.frames = Counter("baolife_frames_sent", "Frames handed to connection writers", registry=r)
        self.frame_bytes = Counter("baolife_frame_bytes_sent", "Bytes of frames handed to writers", registry=r)
        self.flush_batch = Histogram(
            "baolife_flush_batch_players",
            "Players per save batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.flush_seconds = Histogram(
            "baolife_flush_seconds",
            "Wall time of one save batch write",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.flush_failures = Counter("baolife_flush_failures", "Save batches that failed", registry=r)
        self.npc_replies = Counter("baolife_npc_replies", "NPC replies by outcome", ["outcome"], registry=r)
        self.npc_seconds = Histogram(
            "baolife_npc_reply_seconds",
            "Time from job start to reply",
            buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 20),
            registry=r,
        )
        self.store_seconds = Histogram(
            "baolife_store_seconds",
            "Wall time of one store call as the server sees it (pool wait included), by operation",
            ["op"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.store_errors = Counter("baolife_store_errors", "Store calls that raised, by operation", ["op"], registry=r)
        # CPU, memory and open file descriptors (against LimitNOFILE) of this process.
        ProcessCollector(registry=r)
        self._sources: list[StatsSource] = []
        r.register(_StatsCollector(self._sources))
        build = gauge("baolife_build_info", "Always 1; the version label", 1.0, {"version": __version__})
        self.add_source(lambda: [build])

    def add_source(self, source: StatsSource) -> None:
        """Add a scrape-time source of metric families."""
        self._sources.append(source)

    def gc_timer(self) -> GcTimer:
        """A ``gc.callbacks`` entry that times each collector pass into
        ``baolife_gc_pause_seconds``; :meth:`GcTimer.installed` adds and removes it."""
        return GcTimer([self.gc_pause.labels(str(g)) for g in range(3)])

    def observe_tick(self, seconds: float, late: float, frames: int, nbytes: int) -> None:
        self.tick_seconds.observe(seconds)
        self.tick_late.observe(late)
        if frames:
            self.frames.inc(frames)
            self.frame_bytes.inc(nbytes)

    def observe_flush(self, players: int, seconds: float, ok: bool) -> None:
        self.flush_batch.observe(players)
        self.flush_seconds.observe(seconds)
        if not ok:
            self.flush_failures.inc()

    def observe_npc(self, outcome: str, seconds: float) -> None:
        self.npc_replies.labels(outcome).inc()
        self.npc_seconds.observe(seconds)

    def observe_store(self, op: str, seconds: float, ok: bool) -> None:
        """One store call (see :class:`TimedStore`)."""
        self.store_seconds.labels(op).observe(seconds)
        if not ok:
            self.store_errors.labels(op).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class GcTimer:
    """Times the passes of the cyclic garbage collector (``gc.callbacks``).

    A full pass stops the whole process, tick loop included; with tens of
    thousands of loaded players it is the longest pause the server has, so
    it is measured. The callback allocates nothing but a float."""

    def __init__(self, by_generation: Sequence[Any]) -> None:
        self._by_generation = by_generation
        self._started = 0.0

    def __call__(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Time the collector while the block runs (callbacks are process-wide)."""
        gc.callbacks.append(self)
        try:
            yield
        finally:
            gc.callbacks.remove(self)
