"""Calls of one key each, sent to the database together when it is busy.

A login is a lookup of its token and a claim of its player: one key each.
Sent one by one, every login holds a pooled connection for its round trips;
in a reconnect storm thousands of logins queue for a few connections and
most wait out their deadline (issue 13: 30-40 logins a second over two
workers, each connection held about 110 ms by a loaded machine's
scheduling, not by the database). A :class:`Batcher` sends what is waiting
as one call: with a connection free a lone key goes at once, as before;
with every connection busy the keys that arrive meanwhile go together in
the next call, so the calls a second stay what the pool allows while the
keys a second grow with the queue.

Semantics a caller can rely on:

- A key waiting to be sent can be cancelled (it is dropped, nothing done).
- A key that was sent gets its answer even if its caller is cancelled
  meanwhile: the wait for it is shielded, bounded by the batch's own
  deadline (the store's timeout). A claim must not be done in the database
  and lost in the process (the directory would hold an old epoch of the
  player and its saves would be refused).
- ``run`` answers every key in order: a value, or an exception for that key
  alone; an exception it raises is the answer of every key of the batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

import attrs
import trio

from .store import StoreUnavailable

__all__ = ["Batcher"]

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


@attrs.define(eq=False)
class _Call(Generic[K, R]):
    key: K
    done: trio.Event = attrs.Factory(trio.Event)
    sent: bool = False
    gone: bool = False
    answer: R | BaseException | None = None


class Batcher(Generic[K, R]):
    """See the module docstring. ``run`` answers a batch of distinct keys;
    at most ``concurrency`` batches of at most ``limit`` keys are in flight.
    :meth:`serve` runs the batches (a task of the store's nursery)."""

    def __init__(
        self,
        run: Callable[[list[K]], Awaitable[Sequence[R | Exception]]],
        *,
        limit: int,
        concurrency: int,
        name: str,
    ) -> None:
        if limit < 1 or concurrency < 1:
            raise ValueError("a batcher needs a limit and a concurrency of at least 1")
        self._run = run
        self.limit = limit
        self.name = name
        self._slots = trio.Semaphore(concurrency)
        self._pending: deque[_Call[K, R]] = deque()
        self._wake = trio.Event()
        self._serving = False
        self._closed = False
        # Figures: calls made, keys answered, the largest batch.
        self.batches = 0
        self.keys = 0
        self.largest = 0

    @property
    def waiting(self) -> int:
        """Keys waiting to be sent."""
        return sum(not call.gone for call in self._pending)

    async def call(self, key: K) -> R:
        """The answer for ``key`` (raised when it is an exception)."""
        if self._closed or not self._serving:
            raise StoreUnavailable(f"{self.name}: the store is closed")
        call: _Call[K, R] = _Call(key)
        self._pending.append(call)
        self._wake.set()
        try:
            await call.done.wait()
        except BaseException:
            if not call.sent:
                call.gone = True  # never sent: dropped when its turn comes
                raise
            # Sent: its answer comes within the batch's deadline; wait for it.
            with trio.CancelScope(shield=True):
                await call.done.wait()
            # Keep the answer: the caller's cancellation shows at its next checkpoint.
        answer = call.answer
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send waiting keys until cancelled; then every waiting caller is
        answered ``StoreUnavailable``."""
        try:
            async with trio.open_nursery() as nursery:
                self._serving = True
                task_status.started()
                while True:
                    await self._wake.wait()
                    await self._slots.acquire()
                    batch = self._take()
                    if batch:
                        nursery.start_soon(self._send, batch)
                    else:
                        self._slots.release()
        finally:
            self._closed = True
            while self._pending:
                self._answer(self._pending.popleft(), StoreUnavailable(f"{self.name}: the store is closed"))

    def _take(self) -> list[_Call[K, R]]:
        batch: list[_Call[K, R]] = []
        keys: set[K] = set()
        later: list[_Call[K, R]] = []
        pending = self._pending
        while pending and len(batch) < self.limit:
            call = pending.popleft()
            if call.gone:
                continue
            if call.key in keys:
                later.append(call)  # the same key twice: one batch each, in order
                continue
            keys.add(call.key)
            call.sent = True
            batch.append(call)
        pending.extendleft(reversed(later))
        if not pending:
            self._wake = trio.Event()
        return batch

    async def _send(self, batch: list[_Call[K, R]]) -> None:
        try:
            self.batches += 1
            self.keys += len(batch)
            self.largest = max(self.largest, len(batch))
            try:
                answers = await self._run([call.key for call in batch])
            except Exception as exc:  # noqa: BLE001 - every key of the batch is answered with it
                for call in batch:
                    self._answer(call, _copy(exc))
                return
            if len(answers) != len(batch):
                raise AssertionError(f"{self.name}: {len(answers)} answers for {len(batch)} keys")
            for call, answer in zip(batch, answers, strict=True):
                self._answer(call, answer)
        finally:
            for call in batch:
                if not call.done.is_set():  # cancelled: the store is closing
                    self._answer(call, StoreUnavailable(f"{self.name}: the store closed during the call"))
            self._slots.release()

    @staticmethod
    def _answer(call: _Call[K, R], answer: R | BaseException) -> None:
        call.answer = answer
        call.done.set()


def _copy(exc: Exception) -> Exception:
    """One exception object per caller (each raises it in its own task)."""
    try:
        fresh = type(exc)(*exc.args)
    except Exception:  # noqa: BLE001 - a type that cannot be rebuilt from its args: share it
        return exc
    fresh.__cause__ = exc
    return fresh
