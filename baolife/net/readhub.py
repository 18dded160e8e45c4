"""One task reads every plain-TCP connection, from one epoll set.

Why not a reader task per connection: a connection spends its life waiting
for its next message, seconds at a time, and every wait builds a fresh chain
of objects (trio's coroutines, a waiter, closures: about 20 per message),
which lives seconds and then dies. CPython's collector starts a young pass
after 10,000 *net* allocations, and this churn is net zero (a new chain is
built as the old one dies), so between passes the young generation filled
with hundreds of thousands of live chains and one young pass walked them
all: 30-330 ms pauses at 16,000 players, measured (docs/BENCHMARKS.md,
issue 8). Here the waiting is one registration per connection in an epoll
set the kernel keeps; one task waits on that set's descriptor (trio's
``wait_readable``) and, when it wakes, calls the callback of each ready
connection, which reads without waiting.

Contract: ``add(fd, callback)`` before reading, ``remove(fd)`` before the
descriptor is closed (its number can be reused at once by the next
connection). A callback runs in the hub's task, must not block, and must
read the descriptor (level-triggered: a readable descriptor left unread is
reported again at the next round) or remove it. A callback that raises is
logged and its descriptor removed; the other connections go on.
"""

from __future__ import annotations

import select
from collections.abc import Callable

import attrs
import structlog
import trio

__all__ = ["ReadHub", "ReadHubStatistics"]

log = structlog.get_logger("baolife.net")

# Ready connections served per round before the hub yields to the other
# tasks (the tick loop): about 10 ms of reading and parsing.
MAX_EVENTS = 256
# Ready connections one read_now serves at most (the tick loop's late
# intake): more than send a message in one tick at 19,500 players (about
# 600), few enough that a backlog (after a stall of a second or two) is not
# taken into one tick: read by the hub's task, it comes in rounds with the
# other tasks between them (4,096 here let 285 says into one tick after a
# stall of 1.8 s in the ramp, over the NPC queue's 256: busy).
MAX_READ_NOW = 1024


@attrs.frozen
class ReadHubStatistics:
    registered: int
    rounds: int
    callbacks: int
    failures: int


class ReadHub:
    """See the module docstring. Run :meth:`run` in a nursery that outlives
    every connection registered with it."""

    def __init__(self, *, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self._epoll: select.epoll | None = None
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._rounds = 0
        self._calls = 0
        self._failures = 0

    def statistics(self) -> ReadHubStatistics:
        return ReadHubStatistics(
            registered=len(self._callbacks), rounds=self._rounds, callbacks=self._calls, failures=self._failures
        )

    @property
    def running(self) -> bool:
        return self._epoll is not None

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``fd`` is readable (or hung up), until :meth:`remove`.

        Raises:
            RuntimeError: the hub is not running.
        """
        if self._epoll is None:
            raise RuntimeError("the read hub is not running")
        try:
            self._epoll.register(fd, select.EPOLLIN)
        except FileExistsError:
            # A closed descriptor leaves the set by itself; its number, reused,
            # may still be there if it was dup'ed. Take it over.
            self._epoll.modify(fd, select.EPOLLIN)
        self._callbacks[fd] = callback

    def remove(self, fd: int, callback: Callable[[], None] | None = None) -> None:
        """Stop watching ``fd`` (idempotent). Call before closing it. With
        ``callback``, only if ``fd`` is still watched for that callback (a
        late remove must not take a reused number from its new owner)."""
        registered = self._callbacks.get(fd)
        if registered is None or (callback is not None and registered is not callback):
            return
        del self._callbacks[fd]
        if self._epoll is None:
            return
        try:
            self._epoll.unregister(fd)
        except OSError:
            return  # already closed: the kernel dropped it from the set

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wait and dispatch until cancelled."""
        with select.epoll() as epoll:
            self._epoll = epoll
            try:
                task_status.started()
                while True:
                    await trio.lowlevel.wait_readable(epoll.fileno())
                    self._round(epoll.poll(0, self.max_events))
            finally:
                self._epoll = None
                self._callbacks.clear()

    def read_now(self, most: int = MAX_READ_NOW) -> int:
        """One round now, from the calling task, without waiting: the
        callbacks of up to ``most`` ready descriptors (those left are
        reported again, to the hub's task or the next call). Returns how many
        were ready; 0 while the hub is not running."""
        epoll = self._epoll
        if epoll is None:
            return 0
        ready = epoll.poll(0, most)
        if ready:
            self._round(ready)
        return len(ready)

    def _round(self, ready: list[tuple[int, int]]) -> None:
        self._rounds += 1
        for fd, _events in ready:
            # Looked up per event: an earlier callback of this round may have
            # removed this descriptor (a connection it ended).
            callback = self._callbacks.get(fd)
            if callback is None:
                continue
            self._calls += 1
            try:
                callback()
            except Exception:  # one connection's fault must not stop every read
                self._failures += 1
                log.exception("read_callback_failed", fd=fd)
                self.remove(fd, callback)
