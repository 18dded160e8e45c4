"""A bounded pool of database connections, in plain trio.

The pool knows nothing of MySQL: it is given ``connect`` (an async function
that opens one connection), ``close`` (a synchronous function that drops
one) and ``usable`` (is an idle connection still fit to lend). This keeps the
bookkeeping, and its tests, free of the trio-asyncio bridge.

Rules that make it safe under cancellation:

- At most ``size`` connections exist, lent or idle or being opened; a task
  that finds none waits its turn (FIFO) for a slot. A borrower that asks to
  wait ``behind`` (work that can wait: the LLM path's budget and cache
  calls) gets a freed slot only when no other borrower waits, and such
  borrowers never hold the last connection (of a pool of two or more):
  they may use all the others while nothing else needs them, and logins
  and saves always find one, even while the others wait on a lock.
- A borrower hands a connection back with ``reuse=True`` only when its work
  finished normally. Anything else (an error, a cancel at any point, a
  result read halfway) hands it back with ``reuse=False`` and it is closed,
  never lent again. :meth:`borrow` does this for its ``async with`` body.
- Idle connections are checked with ``usable`` and dropped when they have
  been idle longer than ``max_idle`` (the server, or a firewall, may have
  forgotten them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

import attrs
import trio

__all__ = ["ConnectionPool", "PoolClosed", "PoolStatistics"]

C = TypeVar("C")


class PoolClosed(Exception):
    """The pool was closed; no more connections are lent."""


@attrs.frozen
class PoolStatistics:
    """``size`` is the bound; ``open`` counts connections that exist (lent,
    idle or being opened); ``waiting`` counts tasks waiting for a slot.
    ``wait_seconds`` sums the time borrowers waited (slot and connect)."""

    size: int
    open: int
    in_use: int
    idle: int
    waiting: int
    borrows: int
    wait_seconds: float
    max_wait_seconds: float
    connects: int
    connect_failures: int
    discarded: int


class _Slots:
    """A counting semaphore whose waiters come in two lines: a freed slot goes
    to the first line before the second (each in arrival order), and the
    second holds at most ``most_behind`` slots at once."""

    def __init__(self, count: int, most_behind: int) -> None:
        self._free = count
        self._most_behind = most_behind
        self._behind_held = 0
        self._first = trio.lowlevel.ParkingLot()
        self._behind = trio.lowlevel.ParkingLot()

    @property
    def waiting(self) -> int:
        return len(self._first) + len(self._behind)

    async def acquire(self, *, behind: bool) -> None:
        # As trio.Semaphore: a cancel is taken before a slot, never after.
        await trio.lowlevel.checkpoint_if_cancelled()
        if behind:
            if self._free and not self._first and not self._behind and self._behind_held < self._most_behind:
                self._free -= 1
                self._behind_held += 1
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            # A release hands its slot straight to the task it unparks (and
            # counts it); a task cancelled while parked was never handed one.
            await self._behind.park()
        elif self._free and not self._first:
            self._free -= 1
            await trio.lowlevel.cancel_shielded_checkpoint()
        else:
            await self._first.park()

    def release(self, *, behind: bool) -> None:
        if behind:
            self._behind_held -= 1
        if self._first:
            self._first.unpark()
        elif self._behind and self._behind_held < self._most_behind:
            self._behind_held += 1
            self._behind.unpark()
        else:
            self._free += 1


class ConnectionPool(Generic[C]):
    """See the module docstring. Owns its connections: :meth:`close` drops
    the idle ones at once and the lent ones when they come back."""

    def __init__(
        self,
        size: int,
        *,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], None],
        usable: Callable[[C], bool],
        max_idle: float = 300.0,
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.size = size
        self._connect = connect
        self._close = close
        self._usable = usable
        self.max_idle = max_idle
        # Borrowers who wait behind never hold the last connection.
        self._slots = _Slots(size, max(1, size - 1))
        self._idle: deque[tuple[C, float]] = deque()
        self._closed = False
        self._in_use = 0
        self._connecting = 0
        self.borrows = 0
        self.wait_seconds = 0.0
        self.max_wait_seconds = 0.0
        self.connects = 0
        self.connect_failures = 0
        self.discarded = 0

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            size=self.size,
            open=self._in_use + len(self._idle) + self._connecting,
            in_use=self._in_use,
            idle=len(self._idle),
            waiting=self._slots.waiting,
            borrows=self.borrows,
            wait_seconds=self.wait_seconds,
            max_wait_seconds=self.max_wait_seconds,
            connects=self.connects,
            connect_failures=self.connect_failures,
            discarded=self.discarded,
        )

    @asynccontextmanager
    async def borrow(self, *, behind: bool = False) -> AsyncIterator[C]:
        """Lend a connection for the body; it goes back to the pool only if
        the body finishes without an exception (cancellation included).
        ``behind``: see :meth:`acquire`."""
        conn = await self.acquire(behind=behind)
        reuse = False
        try:
            yield conn
            reuse = True
        finally:
            self.release(conn, reuse=reuse, behind=behind)

    async def acquire(self, *, behind: bool = False) -> C:
        """A connection for the caller's sole use; give it back with
        :meth:`release`. Waits for a slot (with ``behind``, after every
        waiting borrower without it), then takes an idle connection or opens
        one. Raises :class:`PoolClosed`, or what ``connect`` raises."""
        if self._closed:
            raise PoolClosed("the connection pool is closed")
        started = trio.current_time()
        await self._slots.acquire(behind=behind)
        try:
            if self._closed:
                raise PoolClosed("the connection pool is closed")
            conn = self._take_idle()
            if conn is None:
                conn = await self._open()
        except BaseException:
            self._slots.release(behind=behind)
            raise
        self._in_use += 1
        self.borrows += 1
        waited = trio.current_time() - started
        self.wait_seconds += waited
        self.max_wait_seconds = max(self.max_wait_seconds, waited)
        return conn

    def release(self, conn: C, *, reuse: bool, behind: bool = False) -> None:
        """Give back a connection from :meth:`acquire` (``behind`` as it was
        taken). With ``reuse=False`` (the borrower's work did not finish
        normally) it is closed."""
        self._in_use -= 1
        try:
            if reuse and not self._closed and self._usable(conn):
                self._idle.append((conn, trio.current_time()))
            else:
                self._discard(conn)
        finally:
            self._slots.release(behind=behind)

    def close(self) -> list[C]:
        """Stop lending: later :meth:`acquire` calls raise :class:`PoolClosed`
        and lent connections are closed when they come back. Returns the idle
        connections, which are now the caller's to close (politely, if it
        can spare the time). Idempotent."""
        self._closed = True
        idle = [conn for conn, _ in self._idle]
        self._idle.clear()
        return idle

    def _take_idle(self) -> C | None:
        # Most recently used first: it is the likeliest to be alive, and the
        # others can age out when the load drops.
        now = trio.current_time()
        while self._idle:
            conn, since = self._idle.pop()
            if now - since <= self.max_idle and self._usable(conn):
                return conn
            self._discard(conn)
        return None

    async def _open(self) -> C:
        self._connecting += 1
        try:
            conn = await self._connect()
        except BaseException:
            self.connect_failures += 1
            raise
        finally:
            self._connecting -= 1
        self.connects += 1
        return conn

    def _discard(self, conn: C) -> None:
        self.discarded += 1
        self._close(conn)
