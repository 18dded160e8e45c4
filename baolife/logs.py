"""Logging: structlog configuration, the non-blocking log writer, Sentry.

Logs are JSON lines (or a console format) written by a thread behind a
bounded queue (:class:`LogWriter`), so a slow stdout or journald never stalls
the tick loop; lines that do not fit are dropped and counted. Context that
changes under a bound logger (the current tick, the player a connection
logged in as) is bound once as a :class:`Deferred` and read only when a line
is written, so the tick loop pays nothing per tick for it. With a Sentry DSN,
error lines also go to Sentry (:class:`SentryForwarder`).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import IO, Any

import orjson
import structlog
import structlog.tracebacks

from . import __version__
from .config import ConfigError

__all__ = [
    "Deferred",
    "LogWriter",
    "SentryForwarder",
    "configure_logging",
    "init_sentry",
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
