"""The cluster bus on the shared database: a table every worker polls.

:meth:`DbBus.publish` appends a row to ``bus_events``; :meth:`DbBus.run`
reads the rows above the last id it saw every ``poll`` seconds (at once
after this worker publishes) and hands each to the handler in id order, so
every worker, the publisher included, sees every event once. Why a table
and not Redis: docs/SCALING.md ("The bus") has the measurements.

An auto-increment id is taken when a row is inserted, not when it commits,
so a reader can see id 11 before id 10 commits. An id skipped over is a
*hole*: it is read again with the next polls for ``hole_wait`` seconds and
delivered if it shows up (an id rolled back never does). Rows older than
``keep`` seconds are trimmed by whichever worker's turn it is (every worker
trims every ``keep / 2`` seconds; the delete is idempotent).

A database outage only delays events: the reader keeps its position and
catches up when reads work again, and a publish raises the store's error
to its caller (the handoff then waits for the lease instead).
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
import trio

from ..db.cluster import ClusterStore
from ..db.store import StoreError
from .bus import BusEvent, Handler

__all__ = ["DbBus"]

log = structlog.get_logger("baolife.cluster")

MAX_HOLES = 1000


class DbBus:
    """The :class:`~baolife.cluster.bus.Bus` of workers sharing one database."""

    def __init__(
        self,
        store: ClusterStore,
        origin: str,
        *,
        poll: float = 0.1,
        keep: float = 60.0,
        batch: int = 500,
        hole_wait: float = 2.0,
    ) -> None:
        self.store = store
        self.origin = origin
        self.poll = poll
        self.keep = keep
        self.batch = batch
        self.hole_wait = hole_wait
        self.published = 0
        self.received = 0
        self.polls = 0
        self.failures = 0
        self.holes_filled = 0
        self.failing = False
        self._wake = trio.Event()
        self._holes: dict[int, float] = {}

    async def publish(self, event: BusEvent) -> None:
        body = orjson.dumps(event.body).decode()
        await self.store.bus_publish(event.origin or self.origin, event.kind, event.player, body)
        self.published += 1
        self._wake.set()  # our own poll reads it at once

    async def run(self, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        last = await self._head()
        task_status.started()
        next_trim = trio.current_time()
        while True:
            rows = None
            try:
                rows = await self.store.bus_read(last, sorted(self._holes), self.batch)
                self.polls += 1
                if self.failing:
                    log.info("bus_reading_again", after=last)
                self.failing = False
            except StoreError as exc:
                self.failures += 1
                if not self.failing:
                    log.warning("bus_read_failed", error=str(exc))
                self.failing = True
            if rows:
                last = await self._deliver(rows, last, handler)
            now = trio.current_time()
            for hole in [h for h, until in self._holes.items() if until < now]:
                del self._holes[hole]
            if now >= next_trim:
                next_trim = now + self.keep / 2
                try:
                    await self.store.bus_trim(self.keep)
                except StoreError as exc:
                    log.warning("bus_trim_failed", error=str(exc))
            if rows is not None and len(rows) >= self.batch:
                continue  # more waiting: read on at once
            with trio.move_on_after(self.poll):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _head(self) -> int:
        while True:
            try:
                return await self.store.bus_head()
            except StoreError as exc:
                self.failures += 1
                log.warning("bus_head_failed", error=str(exc))
                await trio.sleep(self.poll)

    async def _deliver(self, rows: list[Any], last: int, handler: Handler) -> int:
        now = trio.current_time()
        for row in rows:
            if row.id in self._holes:
                del self._holes[row.id]
                self.holes_filled += 1
            elif row.id > last:
                if row.id > last + 1 and len(self._holes) < MAX_HOLES:
                    for missing in range(last + 1, min(row.id, last + 1 + MAX_HOLES)):
                        self._holes[missing] = now + self.hole_wait
                last = row.id
            else:
                continue  # already delivered
            try:
                body = orjson.loads(row.body)
            except orjson.JSONDecodeError:
                log.error("bus_event_unreadable", id=row.id, kind=row.kind)
                continue
            self.received += 1
            event = BusEvent(kind=row.kind, player=row.player, body=body, origin=row.origin)
            try:
                result = handler(event)
                if result is not None:
                    await result
            except Exception:  # one handler's fault must not stop the bus
                log.exception("bus_handler_failed", kind=row.kind, id=row.id)
        return last
