"""Observability: structlog configuration and Prometheus metrics.

Logs: JSON lines (or a console format) written by a thread behind a bounded
queue (:class:`LogWriter`), so a slow stdout or journald never stalls the
tick loop; lines that do not fit are dropped and counted. Context that
changes under a bound logger (the current tick, the player a connection
logged in as) is bound once as a :class:`Deferred` and read only when a line
is written, so the tick loop pays nothing per tick for it. With a Sentry DSN,
error lines also go to Sentry (:class:`SentryForwarder`).

Metrics: one :class:`Metrics` per app with its own registry (no globals).
Hot-path measurements (tick duration, flushes, NPC replies) are observed
directly; everything that is a count or level kept by a component is read
from that component's ``statistics()`` at scrape time by a collector, so the
game pays nothing for it between scrapes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import IO, Any, TypeVar

import orjson
import structlog
import structlog.tracebacks
import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__
from .config import ConfigError
from .db.store import Claim, FirstState, SaveRow, Store

__all__ = [
    "Deferred",
    "LogWriter",
    "Metrics",
    "SentryForwarder",
    "TimedStore",
    "configure_logging",
    "resolve_deferred",
]

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
        else:
            # orjson's output sits in a 4 KiB block: a queue of them would hold 4 KiB a line.
            data = bytes(memoryview(data))
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


class Deferred:
    """A log context value read when a line is written, not when it is bound.

    ``bind_contextvars(tick=Deferred(lambda: loop.tick))`` once puts the
    current tick on every later line of that task and its children;
    :func:`resolve_deferred` replaces it by the value (and drops it while the
    value is None, e.g. ``player`` before a connection logged in).
    """

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], object]) -> None:
        self.read = read

    def __repr__(self) -> str:
        # Shown as the value by a renderer that runs without resolve_deferred.
        return repr(self.read())


def resolve_deferred(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: replace each :class:`Deferred` by its value now."""
    unset = []
    for key, value in event_dict.items():
        if type(value) is Deferred:
            resolved = event_dict[key] = value.read()
            if resolved is None:
                unset.append(key)
    for key in unset:
        del event_dict[key]
    return event_dict


_SENTRY_TAGS = ("session", "player", "tick", "remote")
_SENTRY_SKIP = ("event", "exc_info", "level", "timestamp")
_PLAIN = (str, int, float, bool)  # sent as they are; anything else as its repr


class SentryForwarder:
    """structlog processor: sends each ``error``/``critical`` line to Sentry
    (with its exception when it has one) and passes the line on unchanged.

    ``session``, ``player`` and ``tick`` become Sentry tags, the other fields
    the ``log`` context. Sentry's own transport sends from a thread behind a
    bounded queue, so this costs the event loop only the event's assembly,
    and errors are rare.
    """

    def __init__(self, sdk: Any) -> None:
        self.sdk = sdk

    def __call__(self, _logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event_dict.get("level") not in ("error", "critical"):
            return event_dict
        sdk = self.sdk
        exc_info = event_dict.get("exc_info")
        if exc_info is True:
            exc_info = sys.exc_info()
        with sdk.new_scope() as scope:
            for key in _SENTRY_TAGS:
                if event_dict.get(key) is not None:
                    scope.set_tag(key, str(event_dict[key]))
            fields = {k: v for k, v in event_dict.items() if k not in _SENTRY_SKIP}
            scope.set_context("log", {k: v if isinstance(v, _PLAIN) else repr(v) for k, v in fields.items()})
            event = str(event_dict.get("event", ""))
            if exc_info and exc_info != (None, None, None):
                scope.set_extra("log_event", event)
                sdk.capture_exception(exc_info)
            else:
                sdk.capture_message(event, level=event_dict.get("level", "error"))
        return event_dict


def init_sentry(dsn: str) -> SentryForwarder:
    """Start sentry-sdk for ``dsn`` and return the processor that feeds it.

    Raises:
        ConfigError: sentry-sdk is not installed, or it refuses the DSN.
    """
    try:
        import sentry_sdk
    except ImportError:
        raise ConfigError(
            "BAOLIFE_SENTRY_DSN is set but sentry-sdk is not installed (pip install 'baolife[sentry]')"
        ) from None
    try:
        sentry_sdk.init(
            dsn=dsn,
            release=f"baolife@{__version__}",
            send_default_pii=False,
            # Integrations that patch libraries (httpx, ...) on import stay off:
            # the game reports what it logs as an error, plus uncaught crashes.
            auto_enabling_integrations=False,
        )
    except Exception as exc:  # sentry_sdk.utils.BadDsn and kin: translated at the edge
        raise ConfigError(f"BAOLIFE_SENTRY_DSN: {exc}") from None
    return SentryForwarder(sentry_sdk)


def configure_logging(
    fmt: str = "json", level: str = "info", stream: IO[bytes] | None = None, *, sentry_dsn: str = ""
) -> LogWriter:
    """Configure structlog for the process; returns the writer (close it at exit).

    ``fmt`` is ``json``, ``console`` or ``auto`` (console when stdout is a TTY).
    JSON lines carry exceptions as structured tracebacks (a list of frames
    per exception). With ``sentry_dsn``, error lines also go to Sentry.

    Raises:
        ConfigError: see :func:`init_sentry`.
    """
    out = stream if stream is not None else sys.stdout.buffer
    if fmt == "auto":
        fmt = "console" if sys.stdout.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        resolve_deferred,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if sentry_dsn:
        shared.append(init_sentry(sentry_dsn))
    writer = LogWriter(out)
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


T = TypeVar("T")


class TimedStore:
    """A :class:`~baolife.db.store.Store` that times every call of the store
    it wraps: ``observe(op, seconds, ok)``. Works for any store, so SQLite and
    MySQL report ``baolife_store_seconds`` alike; anything else (a store's own
    ``statistics()``, methods added later) passes through untimed."""

    def __init__(self, store: Store, observe: Callable[[str, float, bool], None]) -> None:
        self.inner = store
        self.kind = store.kind
        self._observe = observe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _timed(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        started = trio.current_time()
        ok = False
        try:
            result = await call()
            ok = True
            return result
        finally:
            self._observe(op, trio.current_time() - started, ok)

    async def migrate(self) -> list[str]:
        """Timed :meth:`Store.migrate`."""
        return await self._timed("migrate", self.inner.migrate)

    async def pending_migrations(self) -> list[str]:
        """Timed :meth:`Store.pending_migrations`."""
        return await self._timed("pending_migrations", self.inner.pending_migrations)

    async def create_account(self, name: str, token_hash: bytes, first_state: FirstState | None = None) -> int:
        """Timed :meth:`Store.create_account`."""
        return await self._timed("create_account", lambda: self.inner.create_account(name, token_hash, first_state))

    async def find_account(self, token_hash: bytes) -> int | None:
        """Timed :meth:`Store.find_account`."""
        return await self._timed("find_account", lambda: self.inner.find_account(token_hash))

    async def claim(self, player_id: int) -> Claim:
        """Timed :meth:`Store.claim`."""
        return await self._timed("claim", lambda: self.inner.claim(player_id))

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        """Timed :meth:`Store.save`."""
        return await self._timed("save", lambda: self.inner.save(rows))

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        """Timed :meth:`Store.add_ai_usage`."""
        await self._timed("add_ai_usage", lambda: self.inner.add_ai_usage(day, player_id, calls, cost))

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        """Timed :meth:`Store.ai_usage`."""
        return await self._timed("ai_usage", lambda: self.inner.ai_usage(day))

    async def ping(self) -> None:
        """Timed :meth:`Store.ping`."""
        await self._timed("ping", self.inner.ping)

    async def aclose(self) -> None:
        """Close the wrapped store (not timed)."""
        await self.inner.aclose()


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
