"""Online or not, and on which worker, the same from every worker: this
worker's side of the owner row's ``online`` flag.

The console's player page and search (:mod:`baolife.admin.api`) say whether
a player is online and where. The worker holding the session knows for
sure; every other worker sharing the database reads the player's owner row
(:meth:`~baolife.db.cluster.ClusterStore.presence`, migration 0006):

* the statement that makes a worker the owner (every claim and every
  registration, so every login that loads the player) sets the flag, at no
  extra statement or round trip;
* once the player's session has ended here, :class:`Presence` clears it,
  off the tick loop: the loop's presence hook only records the player and
  the epoch it was loaded under (:meth:`Presence.left`, a dict insertion),
  and :meth:`Presence.run` writes them in batches, retrying after a
  failure. The epoch guards the write: a later login of the player, here or
  on another worker, has bumped it and its flag stays;
* a row whose worker's lease has run out (a crashed, frozen or cut-off
  worker) reads as offline whatever its flag, and a worker that shuts down
  cleanly deletes its row, so its players read as offline at once (it
  writes nothing while shutting down: the saves come first).

Why a flag in the database rather than asking the owner over the bus: any
worker answers from one read of its own, without waiting on the others, so
a worker that is slow, frozen or gone can neither stall the console nor
make it guess (a question and its answer over the database bus are two
polls, and a bus handler cannot await an answer). The price is one write
per logout, made here in the background.

With a local bus (one process alone) no owner rows are kept and nothing is
written: the worker's own sessions are the whole answer.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
import trio
from prometheus_client.core import Metric

from ..db.cluster import ClusterStore
from ..db.store import StoreError
from ..metrics import counter, gauge

__all__ = ["BATCH", "Presence"]

log = structlog.get_logger("baolife.admin")

# Players cleared per transaction: each holds its players' row locks until
# it commits (one round trip on MySQL: the locks, the clear and the commit
# go in one batch), so a batch is kept short for the claims and saves behind it.
BATCH = 100
# Seconds before writing again after the store failed.
RETRY = 1.0


class Presence:
    """Clears the owner row's ``online`` flag of players who left this
    worker; see the module docstring.

    ``store`` is None when no owner rows are kept (a local bus);
    ``online_here(pid)`` tells whether the player is online here again (then
    nothing is written); ``limit`` bounds the players waiting to be written
    (``BAOLIFE_MAX_LOADED_PLAYERS``: each was loaded here; past it they are
    dropped and counted, and read as online until their next login or this
    worker's lease ends); ``paused()`` is true while the worker shuts down.
    """

    def __init__(
        self,
        store: ClusterStore | None,
        worker: str,
        *,
        online_here: Callable[[int], bool],
        limit: int,
        paused: Callable[[], bool] = lambda: False,
        retry: float = RETRY,
    ) -> None:
        self.store = store
        self.worker = worker
        self.online_here = online_here
        self.limit = limit
        self.paused = paused
        self.retry = retry
        self._pending: dict[int, int] = {}
        self._wake = trio.Event()
        self._quiet = trio.Event()
        self._quiet.set()
        self.written = 0
        self.failures = 0
        self.dropped = 0
        self._failing = False

    @property
    def pending(self) -> int:
        """Players waiting for their flag to be cleared."""
        return len(self._pending)

    def left(self, pid: int, epoch: int) -> None:
        """The player's session here ended (the tick loop's presence hook:
        never waits); ``epoch`` is the one this worker loaded them under."""
        if self.store is None or self.paused():
            return
        if pid not in self._pending and len(self._pending) >= self.limit:
            self.dropped += 1
            return
        self._pending[pid] = epoch
        self._quiet = trio.Event() if self._quiet.is_set() else self._quiet
        self._wake.set()

    async def settled(self) -> None:
        """Wait until every player who left so far has been written (or
        dropped): for tests and tools."""
        await self._quiet.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write forever, in this task (the app's nursery)."""
        task_status.started()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self._flush()

    async def _flush(self) -> None:
        while self._pending and self.store is not None:
            if self.paused():
                # Shutting down: the worker's row goes at the end, and with
                # it every flag; the saves need the connections meanwhile.
                self._pending.clear()
                break
            batch: list[tuple[int, int]] = []
            for pid in list(self._pending)[:BATCH]:
                epoch = self._pending.pop(pid)
                if not self.online_here(pid):
                    batch.append((pid, epoch))
            try:
                self.written += await self.store.mark_offline(self.worker, batch)
            except StoreError as exc:
                self.failures += 1
                if not self._failing:
                    log.warning("presence_write_failed", players=len(batch), error=str(exc))
                self._failing = True
                for pid, epoch in batch:
                    self._pending.setdefault(pid, epoch)  # a newer leave wins
                await trio.sleep(self.retry)
                continue
            self._failing = False
        self._quiet.set()

    def metric_families(self) -> list[Metric]:
        """``baolife_admin_presence_*`` (read at scrape time)."""
        return [
            gauge("baolife_admin_presence_pending", "Players whose online flag waits to be cleared", self.pending),
            counter("baolife_admin_presence_failures", "Failed writes of online flags", self.failures),
            counter("baolife_admin_presence_dropped", "Online flags not cleared: too many waiting", self.dropped),
        ]
