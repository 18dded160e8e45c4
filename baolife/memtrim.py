"""Handing freed heap memory back to the system (glibc's ``malloc_trim``).

Objects over 512 bytes (save documents, snapshots, big lists and dicts)
come from the C library's heap, not from Python's own arenas. When they are
freed, glibc keeps the memory: ``free`` shrinks the heap only at its top,
and a free chunk between live ones stays resident for good. Measured at
10,000 lives of every age (docs/BENCHMARKS.md, issue 15): the main heap held
142 MB of which 50-66 MB were in use, the rest in free chunks of 10 KB to
2.6 MB left by the logins' peak and the saves' churn, all of it counted in
the process's RSS. ``malloc_trim(0)`` gives back every whole free page inside
them (``madvise``); it took 4-11 ms there, and a page given back costs
nothing until it is used again.

:class:`Trimmer` calls it every ``interval`` seconds from the app's nursery
(``BAOLIFE_MALLOC_TRIM_INTERVAL``; 0 turns it off), in a worker thread: the
call holds the C heap's locks, not the GIL, so the tick loop goes on meanwhile
(Python's small objects come from its own arenas; only an allocation over
512 bytes waits for the lock). Where the C library has no ``malloc_trim``
(musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Callable

import trio

__all__ = ["Trimmer", "glibc_trim", "rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def glibc_trim() -> Callable[[], object] | None:
    """``malloc_trim(0)`` of this process's C library, or None without one."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def rss_bytes() -> int | None:
    """This process's resident set now (Linux), or None where unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class Trimmer:
    """Gives freed heap memory back every ``interval`` seconds; see the
    module docstring. ``trim`` is the call (None: nothing to call)."""

    def __init__(self, interval: float, trim: Callable[[], object] | None, *, in_thread: bool = True) -> None:
        self.interval = interval
        self._trim = trim
        self.in_thread = in_thread  # False: in the event loop's own thread
        self.trims = 0
        self.seconds = 0.0
        self.released = 0  # bytes the resident set shrank by across the calls

    @property
    def enabled(self) -> bool:
        return self._trim is not None and self.interval > 0

    def trim(self) -> int:
        """Trim now (in any thread); returns the bytes the resident set shrank by."""
        if self._trim is None:
            return 0
        before = rss_bytes()
        started = time.perf_counter()
        self._trim()
        self.seconds += time.perf_counter() - started
        after = rss_bytes()
        self.trims += 1
        released = max(0, before - after) if before is not None and after is not None else 0
        self.released += released
        return released

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Trim every ``interval`` seconds until cancelled (returns at once
        when off)."""
        task_status.started()
        if not self.enabled:
            return
        while True:
            await trio.sleep(self.interval)
            if self.in_thread:
                await trio.to_thread.run_sync(self.trim, thread_name="baolife malloc_trim", abandon_on_cancel=True)
            else:
                self.trim()
