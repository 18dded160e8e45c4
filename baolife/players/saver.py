"""Write-behind saving of dirty players, in batches, with retry and backoff.

Every ``interval`` seconds the saver serializes the dirty players in chunks
of ``batch`` (yielding to the tick loop every few milliseconds) and writes
each chunk in one store transaction, the next chunk being serialized while
the previous one is written. A player whose steps since its last save only
moved its progress (age, money, lowest money) is saved as a progress row,
not a whole state (see :mod:`.directory`). A failed write leaves the players dirty;
nothing is dropped. While saves fail, the saver probes every ``retry_every``
seconds (one second at most) with a batch of one player: a cheap write that
fails as the whole batch would, so the store is found working again within
that time, whatever broke it (a full disk that a read-only health check
would not notice, a locked table, a cut network), and the full flush
follows at once. A longer backoff would leave what a crash may lose growing
for that long after the store works again. A row
refused for its epoch means another process owns that player now: it is
fenced (never saved from here again) and reported through ``on_fenced``.

What a crash loses is what changed since the start of the last flush that
stored all it found (:meth:`Saver.unsaved_seconds`, the gauge
``baolife_unsaved_seconds``). The interval runs from the end of one flush to
the start of the next, so that is the interval plus up to two flushes' own
time, which grows with the load: 7 s at 10,000 players of every age on one
core, 18 s at 19,500 (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import structlog
import trio

from ..db.store import SaveRow, Store, StoreError
from ..model import SCHEMA_VERSION, dump_player
from .directory import Directory, Entry, progress_of

__all__ = ["Saver", "SaverStatistics"]

log = structlog.get_logger("baolife.saver")

# Serializing players holds the thread that runs the ticks: yield this often.
SERIALIZE_SLICE = 0.005


@attrs.frozen
class SaverStatistics:
    flushes: int
    failures: int
    rows: int
    fenced: int
    last_batch: int
    last_ok: float | None
    failing: bool
    saved_through: float


class Saver:
    """See the module docstring. ``observe(batch_size, seconds, ok)`` feeds metrics."""

    def __init__(
        self,
        store: Store,
        directory: Directory,
        *,
        interval: float,
        batch: int,
        on_fenced: Callable[[int], None] = lambda pid: None,
        observe: Callable[[int, float, bool], None] = lambda n, s, ok: None,
        retry_every: float = 1.0,
        in_flight: int = 2,
    ) -> None:
        self.store = store
        self.directory = directory
        self.interval = interval
        self.batch = batch
        self.on_fenced = on_fenced
        self.observe = observe
        self.retry_every = min(retry_every, interval)
        self.in_flight = in_flight
        self.flushes = 0
        self.failures = 0
        self.rows = 0
        self.fenced = 0
        self.last_batch = 0
        self.last_ok: float | None = None
        self._consecutive_failures = 0
        # Every change made before this time (trio's clock) is in the store:
        # the start of the last flush that wrote all it found unsaved. What a
        # crash would lose is what changed since (unsaved_seconds): the save
        # interval plus up to two flushes' own time, which grows with the load.
        self.saved_through = trio.current_time()
        # Players a flush left to a write already in flight (with an older
        # state of them): such a flush does not cover what it found.
        self._left_in_flight = 0
        self._wake = trio.Event()
        # Players serialized for a write that has not ended: another write
        # of one of them waits (flush_player) or leaves it to the next flush,
        # so two transactions never carry one player and commit out of order.
        self._writing: dict[int, trio.Event] = {}

    def statistics(self) -> SaverStatistics:
        return SaverStatistics(
            flushes=self.flushes,
            failures=self.failures,
            rows=self.rows,
            fenced=self.fenced,
            last_batch=self.last_batch,
            last_ok=self.last_ok,
            failing=self.failing,
            saved_through=self.saved_through,
        )

    def unsaved_seconds(self) -> float:
        """How old the oldest change not yet in the store may be: at most
        what a crash now would lose (0 right after a flush found nothing)."""
        return trio.current_time() - self.saved_through

    def wake(self) -> None:
        """Flush now rather than at the next interval."""
        self._wake.set()

    @property
    def failing(self) -> bool:
        """The last save attempt failed (and none has succeeded since)."""
        return self._consecutive_failures > 0

    def next_delay(self) -> float:
        """Seconds until the next flush: the save interval, or the probe
        interval while saves fail."""
        return self.retry_every if self._consecutive_failures else self.interval

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            with trio.move_on_after(self.next_delay()):
                await self._wake.wait()
            self._wake = trio.Event()
            await self.flush()

    async def flush(self) -> bool:
        """Write every dirty player once. True if all writes succeeded.

        Batches are pipelined: while one is being written (the process only
        waits on the database) the next is serialized, and at most
        ``in_flight`` are serialized or written at once (a batch is not
        serialized before it may be written). Serialization yields to the tick
        loop every few milliseconds. After a failed batch no new one starts.
        """
        started = trio.current_time()
        entries = self.directory.dirty_entries()
        if not entries:
            self._covered(started)
            self.directory.evict()
            return True
        self.flushes += 1
        if self._consecutive_failures:
            # Probe with one player before serializing them all again.
            rows, versions = await self._serialize(entries[:1])
            error = await self._write(rows, versions) if rows else None
            if error is not None:
                self._failed([error])
                return False
            self._consecutive_failures = 0
            started = trio.current_time()
            entries = self.directory.dirty_entries()
        left_in_flight = self._left_in_flight
        errors: list[str] = []
        written = 0
        slots = trio.Semaphore(self.in_flight)

        async def write(rows: list[SaveRow], versions: list[tuple[Entry, int, int]]) -> None:
            nonlocal written
            try:
                error = await self._write(rows, versions)
            finally:
                slots.release()
            if error is None:
                written += 1
            else:
                errors.append(error)

        async with trio.open_nursery() as nursery:
            for start in range(0, len(entries), self.batch):
                # A batch is serialized once it may be written: its documents
                # (a grown life's is 13 KB) do not wait in memory for a slot.
                await slots.acquire()
                if errors:
                    slots.release()
                    break
                rows, versions = await self._serialize(entries[start : start + self.batch])
                if not rows or errors:  # a write may have failed while this batch was serialized
                    slots.release()
                    self._unmark(rows)
                    if errors:
                        break
                    continue
                nursery.start_soon(write, rows, versions)
        if errors:
            self._failed(errors)
        else:
            if written:
                self._consecutive_failures = 0
            if self._left_in_flight == left_in_flight:
                self._covered(started)
        self.directory.evict()
        return not errors

    def _covered(self, started: float) -> None:
        """Everything a flush that started at ``started`` found unsaved is stored."""
        if started > self.saved_through:
            self.saved_through = started

    def _failed(self, errors: list[str]) -> None:
        self._consecutive_failures += 1
        n = self._consecutive_failures
        # One probe a second while the store is away: log the first failures
        # and then once a minute, not a line per probe.
        if n & (n - 1) == 0 or n % 60 == 0:
            log.warning(
                "save_failed",
                dirty=self.directory.dirty_count,
                batches_failed=len(errors),
                error=errors[0],
                retry_in=round(self.next_delay(), 2),
                failures=n,
            )

    async def _serialize(self, chunk: list[Entry]) -> tuple[list[SaveRow], list[tuple[Entry, int, int]]]:
        rows = []
        versions = []
        slice_end = time.perf_counter() + SERIALIZE_SLICE
        writing = self._writing
        done = trio.Event()
        for entry in chunk:
            if entry.fenced or not entry.dirty:
                continue
            if entry.player.id in writing:
                self._left_in_flight += 1  # saved by that write, but only as it was then
                continue
            # Until its write ends (_unmark), nobody serializes it again.
            writing[entry.player.id] = done
            # The versions are taken with the state: a change after this point
            # leaves the player dirty for the next flush.
            player = entry.player
            if entry.state_dirty:
                row = SaveRow(player.id, dump_player(player), SCHEMA_VERSION, entry.epoch)
            else:
                row = SaveRow(player.id, None, SCHEMA_VERSION, entry.epoch, progress_of(player))
            rows.append(row)
            versions.append((entry, entry.version, entry.moved))
            if time.perf_counter() >= slice_end:
                await trio.lowlevel.checkpoint()
                slice_end = time.perf_counter() + SERIALIZE_SLICE
        return rows, versions

    async def _write(self, rows: list[SaveRow], versions: list[tuple[Entry, int, int]]) -> str | None:
        """Save one batch; None, or what went wrong (the players stay dirty)."""
        started = trio.current_time()
        try:
            refused = await self.store.save(rows)
        except StoreError as exc:
            self.failures += 1
            self.observe(len(rows), trio.current_time() - started, False)
            return str(exc)
        finally:
            self._unmark(rows)
        self.last_ok = trio.current_time()
        self.last_batch = len(rows)
        self.observe(len(rows), trio.current_time() - started, True)
        for (entry, version, moved), row in zip(versions, rows, strict=True):
            if row.player_id not in refused:
                self.directory.saved(entry, version, moved)
                self.rows += 1
            elif entry.epoch != row.epoch:
                pass  # we re-claimed the player meanwhile: stays dirty, saved with the new epoch
            else:
                self.fenced += 1
                self.directory.fence(entry)
                log.warning("save_fenced", player=row.player_id, epoch=row.epoch)
                self.on_fenced(row.player_id)
        return None

    def _unmark(self, rows: list[SaveRow]) -> None:
        """The write of ``rows`` ended (or will not happen)."""
        for row in rows:
            done = self._writing.pop(row.player_id, None)
            if done is not None:
                done.set()

    async def flush_player(self, pid: int) -> bool:
        """Save one player now, out of turn (a handoff to another worker):
        True once its latest state is in the store (or it had nothing
        unsaved); False if the write failed or was refused."""
        while (busy := self._writing.get(pid)) is not None:
            await busy.wait()  # a flush is writing an older state of it
        entry = self.directory.get(pid)
        if entry is None:
            return True
        if entry.fenced:
            return False
        if not entry.dirty:
            return True
        rows, versions = await self._serialize([entry])
        if rows and await self._write(rows, versions) is not None:
            return False
        return not entry.fenced and not entry.dirty

    async def flush_all(self, attempts: int | None = 5) -> int:
        """Flush until nothing is dirty, probing every ``retry_every`` seconds
        while saves fail; give up after ``attempts`` failures in a row (None:
        never; the caller's cancel scope bounds it, as shutdown does).
        Returns the number of players left unsaved."""
        failures = 0
        while self.directory.dirty_count and (attempts is None or failures < attempts):
            if await self.flush():
                failures = 0
            else:
                failures += 1
                await trio.sleep(self.retry_every)
        return self.directory.dirty_count

    def unsaved_ids(self, limit: int = 100) -> list[int]:
        """Up to ``limit`` ids of players with unsaved changes (for the log)."""
        return sorted(e.player.id for e in self.directory.dirty_entries())[:limit]
