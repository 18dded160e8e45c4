"""The process's own families: whether it is draining, its systemd
notifications and its log writer. (The build, CPU, memory and descriptors
are registered by :class:`Metrics` itself.)"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ..logs import LogWriter
from ..memtrim import Trimmer
from ..systemd import Notifier
from . import counter, gauge

__all__ = ["families"]


def families(
    draining: bool, notifier: Notifier, log_writer: LogWriter | None, trimmer: Trimmer | None = None
) -> Iterator[Metric]:
    """``log_writer`` is None when the app was not given the process's sink."""
    yield gauge("baolife_draining", "1 while shutting down", 1.0 if draining else 0.0)
    yield counter("baolife_systemd_notify_failures", "sd_notify datagrams that could not be sent", notifier.failed)
    if log_writer is not None:
        yield counter("baolife_log_lines", "Log lines written", log_writer.written)
        yield counter("baolife_log_lines_dropped", "Log lines dropped: the log writer fell behind", log_writer.dropped)
    if trimmer is not None and trimmer.enabled:
        yield counter("baolife_malloc_trims", "Returns of freed C-heap memory to the OS (malloc_trim)", trimmer.trims)
        yield counter("baolife_malloc_trim_seconds", "Time spent in malloc_trim", trimmer.seconds)
        yield counter(
            "baolife_malloc_trim_released_bytes", "Bytes the resident set shrank by in malloc_trim", trimmer.released
        )
