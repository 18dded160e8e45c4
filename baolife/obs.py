"""Observability: structlog configuration and Prometheus metrics.

Logs: JSON lines (or a console format) written by a thread behind a bounded
queue (:class:`LogWriter`), so a slow stdout or journald never stalls the
tick loop; lines that do not fit are dropped and counted.

Metrics: one :class:`Metrics` per app with its own registry (no globals).
Hot-path measurements (tick duration, flushes, NPC replies) are observed
directly; everything that is a count or level kept by a component is read
from that component's ``statistics()`` at scrape time by a collector, so the
game pays nothing for it between scrapes.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import orjson
import structlog
import structlog.tracebacks
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["LogWriter", "Metrics", "configure_logging"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogWriter:
    """A file-like sink that hands lines to a writer thread without blocking.

    ``write`` never waits: when ``maxsize`` lines are pending the line is
    dropped and :attr:`dropped` counts it.
    """

    def __init__(self, stream: IO[bytes], maxsize: int = 10000) -> None:
        self.stream = stream
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name="baolife-log", daemon=True)
        self._thread.start()

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped += 1

    def flush(self) -> None:
        """Lines are flushed by the writer thread."""

    def _run(self) -> None:
        q = self._queue
        while True:
            item = q.get()
            chunk = []
            while item is not None:
                chunk.append(item)
                if len(chunk) >= 256:
                    break
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
            if chunk:
                try:
                    self.stream.write(b"".join(chunk))
                    self.stream.flush()
                    self.written += len(chunk)
                except (OSError, ValueError):
                    self.dropped += len(chunk)
            if item is None:
                return

    def close(self, timeout: float = 2.0) -> None:
        """Write what is pending (for up to ``timeout``) and stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


def configure_logging(fmt: str = "json", level: str = "info", stream: IO[bytes] | None = None) -> LogWriter:
    """Configure structlog for the process; returns the writer (close it at exit).

    ``fmt`` is ``json``, ``console`` or ``auto`` (console when stdout is a TTY).
    """
    out = stream if stream is not None else sys.stdout.buffer
    if fmt == "auto":
        fmt = "console" if sys.stdout.isatty() else "json"
    writer = LogWriter(out)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    factory: Any
    if fmt == "console":
        processors = shared + [structlog.dev.ConsoleRenderer(colors=False)]
        factory = structlog.WriteLoggerFactory(file=writer)  # type: ignore[arg-type]
    else:
        processors = shared + [
            # Tracebacks as data, without frame locals: rendering locals is slow
            # and would copy message contents and tokens into the logs.
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        factory = structlog.BytesLoggerFactory(file=writer)  # type: ignore[arg-type]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return writer


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
        self._sources: list[StatsSource] = []
        r.register(_StatsCollector(self._sources))

    def add_source(self, source: StatsSource) -> None:
        """Add a scrape-time source of metric families."""
        self._sources.append(source)

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
