"""One life, one owner: this worker's lease, its claims, and handoffs.

Every worker has a row in the store's ``workers`` table whose expiry it
renews every quarter lease (``lease`` seconds; :meth:`Ownership.run`); each
player it creates or claims is recorded as its own in the same transaction
as the epoch bump (:mod:`baolife.db.cluster`). A claim of a player owned by
another *live* worker is refused (:class:`~baolife.db.cluster.PlayerHeld`),
and :meth:`Ownership.claim` then asks that worker, on the bus, to hand it
over::

    B: claim(P) -> held by A       B: bus "handoff" {from: A, to: B}
    A: stop P's session (bye replaced, 4000), wait until P left the world,
       save P, drop its owner row (if the epoch is still A's)
    A: bus "released"              B: claim(P) again -> A's saved state

so nothing played on A is lost and the two never run P at once. When A
cannot answer (crashed, cut off) B looks again every ``recheck`` seconds
(a read without locks) until A's lease expires, then claims; A's later
saves are refused by the epoch (and counted). A worker shutting down
cleanly serves no handoffs: it says "draining" on the bus, saves everyone,
deletes its row and says "left", and the logins waiting for its players
claim them then; meanwhile they neither ask it nor read its rows again
(a drain moves thousands of players at once: an ask and a read a second
each would crowd the logins they wait for).

With a local bus (one process alone, SQLite's default) none of this is
enforced: the worker row is written and renewed only so that a second
worker on the same database is noticed (:meth:`Ownership.problems`).

A worker that cannot renew for a whole lease can no longer prove it owns
anything: at ``lease - margin`` of its own clock after the start of its last
successful renewal (always before the database's expiry) it stops every
session (``on_lapse``) and refuses claims until a renewal works again.

The players' side of a handoff (kick, wait, save) is ``vacate(pid)``, given
by the app (:mod:`baolife.players.handoff`): this module knows only the
store and the bus.

One piece: the lease, the claims and both sides of a handoff are one
protocol between workers, whose steps and timings are read together to see
that no player runs twice.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

from ..db.cluster import ClusterStore, PlayerHeld, WorkerInfo
from ..db.store import Claim, StoreError
from .bus import Bus, BusEvent

__all__ = [
    "HANDOFF_BUCKETS",
    "Ownership",
    "OwnershipStatistics",
    "VacateFailed",
    "WorkerIdInUse",
    "default_worker_id",
]

log = structlog.get_logger("baolife.cluster")

# Upper bounds (seconds) of the handoff latency histogram.
HANDOFF_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Seconds without an answer before a handoff request is sent again.
ASK_AGAIN = 2.0

_counter = iter(range(1, 1 << 30))


def default_worker_id(ws_port: int) -> str:
    """``host:port`` of the WebSocket listener, unique on a host (two
    workers cannot bind one port); with port 0 (tests, tools) ``host:pid``
    and a counter, unique in the process."""
    host = socket.gethostname()
    if ws_port:
        return f"{host}:{ws_port}"
    return f"{host}:pid{os.getpid()}.{next(_counter)}"


class WorkerIdInUse(Exception):  # noqa: N818 - a configuration error, told once at start
    """Another running process uses this worker id."""


class VacateFailed(Exception):  # noqa: N818
    """The player could not be saved here, so it is not released."""


@attrs.frozen
class OwnershipStatistics:
    worker: str
    lease: float
    live_workers: int
    lapsed: bool
    lapses: int
    renew_failures: int
    handoffs_requested: int
    handoffs_served: int
    handoffs_failed: int
    takeovers: int
    handoff_buckets: tuple[int, ...]
    handoff_count: int
    handoff_seconds: float


class Ownership:
    """This worker's lease and handoffs; see the module docstring.

    ``vacate(pid)`` stops and saves a player held here and returns the
    epoch it was saved under (None: not loaded here), raising
    :class:`VacateFailed` when it cannot be saved; ``on_lapse()`` stops
    every session here. ``bus_kind`` is what this worker's bus reaches
    (``local``: this process only).
    """

    def __init__(
        self,
        store: ClusterStore,
        bus: Bus,
        *,
        worker: str,
        lease: float,
        vacate: Callable[[int], Awaitable[int | None]],
        on_lapse: Callable[[], None],
        bus_kind: str,
        store_kind: str,
        address: str = "",
        recheck: float = 1.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.worker = worker
        self.instance = secrets.token_hex(16)
        self.lease = lease
        self.renew_every = lease / 4
        # Our own clock may run a little slower than the database's.
        self.margin = max(0.2, lease * 0.05)
        self.vacate = vacate
        self.on_lapse = on_lapse
        self.bus_kind = bus_kind
        # With a local bus the process is alone (no one to hand players to,
        # no one to take them): its row only lets it find out if it is not.
        self.enforced = bus_kind != "local"
        self.store_kind = store_kind
        self.address = address
        self.recheck = recheck
        self.joined = False
        self._ever_joined = False
        self.draining = False
        self.valid_until = 0.0
        self.lapsed = False
        self.lost = False
        self.peers: list[WorkerInfo] = []
        self.lapses = 0
        self.renew_failures = 0
        self.renew_failures_now = False
        self.handoffs_requested = 0
        self.handoffs_served = 0
        self.handoffs_failed = 0
        self.takeovers = 0
        self._handoff_buckets = [0] * len(HANDOFF_BUCKETS)
        self._handoff_count = 0
        self._handoff_seconds = 0.0
        self._waiters: dict[int, trio.Event] = {}
        self._held_by: dict[int, str] = {}  # players our logins wait for, by owner
        # Workers that said they are draining, until when we believe it (one
        # lease: a drain that outlives it, or a process under the same id
        # after one that never said "left", is asked and read again).
        self._draining_peers: dict[str, float] = {}
        self._vacating: set[int] = set()
        self._nursery: trio.Nursery | None = None

    # ----------------------------------------------------------------- joining and the lease

    def _info(self) -> WorkerInfo:
        return WorkerInfo(
            id=self.worker,
            instance=self.instance,
            store_kind=self.store_kind,
            bus=self.bus_kind,
            address=self.address,
            started_at=0.0,
        )

    async def join(self) -> None:
        """Write our worker row before serving anyone. When a live row of
        another process holds our id, watch it for a lease: if it is renewed
        that process is running and :class:`WorkerIdInUse` is raised; if it
        runs out (a crashed predecessor under a fixed id) we take the id.
        The first join of this process also drops the owner rows under our
        id: a predecessor's (stopped or crashed), whose players we do not
        hold, so other workers claim them without asking us."""
        started = trio.current_time()
        fresh = not self._ever_joined
        result = await self.store.join_cluster(self._info(), self.lease, fresh=fresh)
        first = result.holder
        first_expiry = started + first.expires_in if first is not None else 0.0
        while result.holder is not None and first is not None:
            holder = result.holder
            expiry = trio.current_time() + holder.expires_in
            if holder.instance != first.instance or expiry > first_expiry + 0.5:
                raise WorkerIdInUse(
                    f"worker id {self.worker!r} is in use by another running process"
                    f" ({holder.address or 'no address'}, lease renewed); give each worker its own BAOLIFE_WORKER_ID"
                )
            if trio.current_time() - started > self.lease + 1:
                break
            await trio.sleep(min(0.5, max(0.05, holder.expires_in)))
            result = await self.store.join_cluster(self._info(), self.lease, fresh=fresh)
        if result.holder is not None:
            result = await self.store.join_cluster(self._info(), self.lease, force=True, fresh=fresh)
        self.joined = True
        self._ever_joined = True
        self.valid_until = started + self.lease - self.margin
        self.peers = result.workers
        log.info(
            "cluster_joined",
            worker=self.worker,
            lease=self.lease,
            workers=[w.id for w in self.peers],
            waited=round(trio.current_time() - started, 2),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew the lease forever (and serve handoffs in this task's nursery)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                await self._renew_once()
                await trio.sleep(self.renew_every if not (self.lapsed or self.renew_failures_now) else 0.5)

    async def _renew_once(self) -> None:
        started = trio.current_time()
        # Past our validity (a frozen process, a slow renewal): whatever the
        # renewal says now, another worker may have taken our players.
        self.check()
        try:
            peers = await self.store.renew_worker(self.worker, self.instance, self.lease)
        except StoreError as exc:
            self.renew_failures += 1
            if not self.renew_failures_now:
                log.warning("lease_renew_failed", error=str(exc))
            self.renew_failures_now = True
            self.check()
            return
        self.renew_failures_now = False
        if peers is None:
            # Our row is gone or another process's: we may own nothing.
            if not self.lost:
                log.error("worker_row_lost", worker=self.worker)
            self.lost = True
            if self.enforced:
                self._lapse()
            try:
                await self.join()
                self.lost = False
            except WorkerIdInUse as exc:
                log.error("worker_id_in_use", error=str(exc))
            return
        self.peers = peers
        self.valid_until = started + self.lease - self.margin
        if self.lapsed:
            log.info("lease_renewed", worker=self.worker)
            self.lapsed = False

    def check(self) -> None:
        """Lapse now if our lease may have run out (cheap: the app calls it
        after every tick, so a process that was frozen stops its players at
        its first tick back)."""
        if self.enforced and not self.lapsed and self.joined and trio.current_time() >= self.valid_until:
            self._lapse()

    def _lapse(self) -> None:
        if self.lapsed:
            return
        self.lapsed = True
        self.lapses += 1
        log.error("lease_lapsed", worker=self.worker, lease=self.lease)
        self.on_lapse()

    async def announce_drain(self) -> None:
        """At the start of a clean shutdown: serve no more handoffs, and tell
        the others so that their logins wait for our "left" without asking."""
        self.draining = True
        if not self.joined:
            return
        try:
            await self.bus.publish(BusEvent("draining", None, {"worker": self.worker}))
        except StoreError as exc:
            log.warning("drain_unannounced", error=str(exc))

    def peer_draining(self, worker: str) -> bool:
        """True while ``worker`` is believed to drain (it said so, less than
        a lease ago, and has not said "left")."""
        return self._draining_peers.get(worker, 0.0) > trio.current_time()

    async def leave(self) -> None:
        """At the end of a clean shutdown (every player saved): drop our
        row, so every player we own can be claimed at once."""
        if not self.joined:
            return
        try:
            await self.store.leave_cluster(self.worker, self.instance)
            self.joined = False
            log.info("cluster_left", worker=self.worker)
            # Logins elsewhere waiting for our players claim them now.
            await self.bus.publish(BusEvent("left", None, {"worker": self.worker}))
        except StoreError as exc:
            log.warning("cluster_leave_failed", error=str(exc))

    # ----------------------------------------------------------------- claiming (the new owner)

    async def claim(self, pid: int) -> Claim:
        """Take ``pid`` for this worker: at once when free (or ours), else
        after its owner hands it over or its lease expires. The caller
        bounds the wait (a login's deadline)."""
        if self.lapsed or self.lost:
            # Not StoreUnavailable: the directory must not serve a cached copy either.
            raise StoreError("this worker's lease has lapsed; it cannot take players until it renews")
        asked: str | None = None
        asked_at = since = expires = 0.0
        try:
            while True:
                waiter = self._waiters.setdefault(pid, trio.Event())
                try:
                    claim = await self.store.claim(pid)
                except PlayerHeld as held:
                    now = trio.current_time()
                    since = since or now
                    expires = now + held.remaining
                    if held.worker != asked:
                        asked, asked_at = held.worker, now
                        if not self.peer_draining(held.worker):
                            await self._ask(pid, held.worker)
                    self._held_by[pid] = held.worker
                    asked_at = await self._wait(pid, waiter, held, expires, asked_at)
                    continue
                if since:
                    now = trio.current_time()
                    seconds = now - since
                    self._observe_handoff(seconds)
                    # Taken once the owner's lease ran out: it never let go
                    # (crashed, frozen, cut off), else it released in time.
                    answered = now < expires - 0.05
                    self.takeovers += not answered
                    log.info(
                        "handoff_claimed", player=pid, previous=asked, answered=answered, seconds=round(seconds, 3)
                    )
                return claim
        finally:
            self._held_by.pop(pid, None)
            left = self._waiters.get(pid)
            if left is not None and not left.is_set():
                del self._waiters[pid]

    async def _wait(self, pid: int, waiter: trio.Event, held: PlayerHeld, expires: float, asked_at: float) -> float:
        """Until the owner answers, leaves, or its lease may have run out.
        Between events it looks again every ``recheck`` seconds with a read
        that takes no lock (a claim would lock the row the owner is saving),
        and asks again after :data:`ASK_AGAIN` seconds without an answer (a
        lost event, a failed save there). Returns when it last asked."""
        while True:
            with trio.move_on_after(min(max(expires - trio.current_time(), 0.02), self.recheck)):
                await waiter.wait()
            now = trio.current_time()
            if waiter.is_set() or now >= expires - 0.05:
                return asked_at
            if self.peer_draining(held.worker):
                continue  # its "left" (or its lease) frees the player
            try:
                owner = await self.store.owner(pid)
            except StoreError:
                return asked_at
            if owner != held.worker:
                return asked_at
            if now - asked_at > ASK_AGAIN:
                asked_at = now
                await self._ask(pid, held.worker)

    async def _ask(self, pid: int, owner: str) -> None:
        self.handoffs_requested += 1
        try:
            await self.bus.publish(BusEvent("handoff", pid, {"from": owner, "to": self.worker}))
        except StoreError as exc:
            # Without the bus the lease's expiry is the answer.
            log.warning("handoff_request_failed", player=pid, error=str(exc))

    def _observe_handoff(self, seconds: float) -> None:
        self._handoff_count += 1
        self._handoff_seconds += seconds
        for i, bound in enumerate(HANDOFF_BUCKETS):
            if seconds <= bound:
                self._handoff_buckets[i] += 1
                break

    # ----------------------------------------------------------------- bus events

    def on_handoff(self, event: BusEvent) -> None:
        """A worker asks the owner of ``event.player`` to hand it over."""
        pid = event.player
        if pid is None or event.body.get("from") != self.worker or event.body.get("to") == self.worker:
            return
        if self.draining:
            # Saving everyone already (a clean shutdown): leave() frees them
            # all at once, rather than a transaction or three per player.
            return
        if pid in self._vacating or self._nursery is None:
            return  # already under way: its "released" answers this one too
        self._vacating.add(pid)
        self._nursery.start_soon(self._serve_handoff, pid, str(event.body.get("to", "")))

    def on_draining(self, event: BusEvent) -> None:
        """A worker started a clean shutdown: its players come free all at
        once when it says "left" (or when its lease runs out)."""
        worker = event.body.get("worker")
        if isinstance(worker, str) and worker != self.worker:
            self._draining_peers[worker] = trio.current_time() + self.lease

    def on_left(self, event: BusEvent) -> None:
        """A worker shut down cleanly: every player it owned is free."""
        gone = event.body.get("worker")
        if isinstance(gone, str):
            self._draining_peers.pop(gone, None)
        for pid, owner in list(self._held_by.items()):
            if owner == gone:
                waiter = self._waiters.pop(pid, None)
                if waiter is not None:
                    waiter.set()

    def on_released(self, event: BusEvent) -> None:
        """A worker let a player go: whoever waits for it claims again."""
        if event.player is not None:
            waiter = self._waiters.pop(event.player, None)
            if waiter is not None:
                waiter.set()

    async def _serve_handoff(self, pid: int, to: str) -> None:
        started = trio.current_time()
        try:
            with trio.fail_after(self.lease):
                epoch = await self.vacate(pid)
            released = await self.store.release(pid, self.worker, epoch)
        except (VacateFailed, StoreError, trio.TooSlowError) as exc:
            self.handoffs_failed += 1
            log.warning("handoff_failed", player=pid, to=to, error=str(exc) or type(exc).__name__)
            return
        finally:
            self._vacating.discard(pid)
        self.handoffs_served += 1
        seconds = round(trio.current_time() - started, 3)
        log.info("handoff_served", player=pid, to=to, released=released, seconds=seconds)
        try:
            await self.bus.publish(BusEvent("released", pid, {"from": self.worker, "to": to}))
        except StoreError as exc:
            log.warning("handoff_release_unannounced", player=pid, error=str(exc))

    # ----------------------------------------------------------------- readiness and metrics

    def problems(self) -> list[str]:
        """Why this worker should not get players (for /readyz)."""
        out = []
        if self.lost:
            out.append(f"worker id {self.worker!r} is used by another process")
        elif self.lapsed:
            out.append("lease lapsed: the database has not renewed this worker's lease")
        others = [w for w in self.peers if w.id != self.worker]
        if others and self.bus_kind == "local":
            out.append(
                f"{len(others)} other worker(s) share this database ({', '.join(w.id for w in others[:3])}) but"
                " BAOLIFE_BUS_URL=local: set it to db on every worker"
            )
        elif any(w.bus == "local" for w in others):
            local = [w.id for w in others if w.bus == "local"]
            out.append(f"worker(s) {', '.join(local[:3])} share this database with BAOLIFE_BUS_URL=local")
        return out

    def statistics(self) -> OwnershipStatistics:
        cumulative, total = [], 0
        for n in self._handoff_buckets:
            total += n
            cumulative.append(total)
        return OwnershipStatistics(
            worker=self.worker,
            lease=self.lease,
            live_workers=len(self.peers),
            lapsed=self.lapsed or self.lost,
            lapses=self.lapses,
            renew_failures=self.renew_failures,
            handoffs_requested=self.handoffs_requested,
            handoffs_served=self.handoffs_served,
            handoffs_failed=self.handoffs_failed,
            takeovers=self.takeovers,
            handoff_buckets=tuple(cumulative),
            handoff_count=self._handoff_count,
            handoff_seconds=self._handoff_seconds,
        )
