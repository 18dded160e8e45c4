"""What workers sharing one database keep in it: their leases, who owns each
player, and the cluster bus's table (migration 0004; docs/SCALING.md).

The two stores take these methods from the mixins here (:class:`SqliteCluster`,
:class:`MysqlCluster`), so the SQL of the cluster lives in one place per
dialect and the stores' own modules only gain a base class and a few lines in
``claim`` and ``create_account``:

* a store whose ``worker`` is set (the app sets it at start) records that
  worker as the owner of every player it creates or claims, in the same
  transaction as the epoch, and :meth:`claim` refuses with
  :class:`PlayerHeld` a player whose owner is another *live* worker (one
  whose lease has not expired): the caller asks that worker to hand it over
  (:mod:`baolife.cluster.ownership`) or waits for the lease to run out;
* a worker's lease is one row in ``workers``, renewed every quarter lease,
  so renewing costs one statement whatever the number of players; a
  player's owner row only names the worker, and whether the player is
  online there (migration 0006: set by the statement that makes it the
  owner, cleared by :meth:`mark_offline` once the session ends there; read
  as offline once the worker's lease has run out);
* times are milliseconds of the database's clock (MySQL), or of the host's
  clock (SQLite, whose workers all share one host), so workers never compare
  their own clocks with each other.

Writes to ``player_owners`` are made only by transactions that hold the
player's row lock in ``players`` (the claim's epoch bump, the account's
insert, :meth:`release`'s and :meth:`mark_offline`'s locking reads), so an
owner row moves in step with the epoch that fences saves. The one
exception deletes only: a process's first join drops the rows naming its
id (an earlier process's, which the new one does not hold), and a row a
claim has just made another worker's no longer matches it.

One piece: the cluster's SQL for both dialects, kept together so the SQLite
and MySQL versions of each statement are read and changed side by side.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from .mysql_batch import send_batch
from .mysql_dialect import bounded, lock_epochs_statement

__all__ = [
    "BusRow",
    "ClusterStore",
    "JoinResult",
    "MysqlCluster",
    "PlayerHeld",
    "SqliteCluster",
    "WorkerInfo",
]

T = TypeVar("T")


class PlayerHeld(Exception):  # noqa: N818 - a state the caller answers, not a failure
    """The player is owned by another live worker; nothing was changed."""

    def __init__(self, player_id: int, worker: str, remaining: float) -> None:
        super().__init__(f"player {player_id} is held by worker {worker} for {remaining:.1f} s more")
        self.player_id = player_id
        self.worker = worker
        self.remaining = remaining


@attrs.frozen
class WorkerInfo:
    """A worker as its row says: ``expires_in`` is the seconds its lease has
    left when read (negative: lapsed)."""

    id: str
    instance: str
    store_kind: str
    bus: str
    address: str
    started_at: float
    expires_in: float = 0.0


@attrs.frozen
class JoinResult:
    """What :meth:`ClusterStore.join_cluster` found: ``holder`` is the live
    row of another process under our worker id (then nothing was written),
    ``workers`` the live workers (ours included when joined)."""

    holder: WorkerInfo | None
    workers: list[WorkerInfo]


@attrs.frozen
class BusRow:
    id: int
    origin: str
    kind: str
    player: int | None
    body: str


class ClusterStore(Protocol):
    """The cluster methods both stores have (see the module docstring)."""

    worker: str | None

    async def claim(self, player_id: int) -> Any:
        """The store's claim: with ``worker`` set, raises :class:`PlayerHeld`."""

    async def join_cluster(
        self, info: WorkerInfo, lease: float, *, force: bool = False, fresh: bool = False
    ) -> JoinResult:
        """Write our worker row (unless another live process holds the id and
        not ``force``) and list the live workers. ``fresh``: the process has
        loaded no player yet (its first join), so the owner rows naming its
        id are an earlier process's and go in the same transaction; kept,
        they would make that process's players held again by a worker that
        has none of them (every claim elsewhere a needless handoff)."""

    async def renew_worker(self, worker: str, instance: str, lease: float) -> list[WorkerInfo] | None:
        """Extend our lease; None if our row is gone or another process's."""

    async def leave_cluster(self, worker: str, instance: str) -> None:
        """Delete our worker row: every player we own is free at once."""

    async def release(self, player_id: int, worker: str, epoch: int | None) -> bool:
        """Drop ``worker``'s ownership of a player whose epoch is still
        ``epoch`` (None: whatever it is); True if released."""

    async def owner(self, player_id: int) -> str | None:
        """The live worker that owns the player, or None."""

    async def presence(self, player_id: int) -> tuple[str, bool] | None:
        """The live worker that owns the player and whether the player is
        online there (the owner row's flag, migration 0006), or None when no
        live worker owns them."""

    async def mark_offline(self, worker: str, players: Sequence[tuple[int, int]]) -> int:
        """Clear the online flag of each ``(player id, epoch)`` that
        ``worker`` still owns under that epoch (a later claim, here or
        elsewhere, has bumped it: then the flag is that claim's); how many
        were cleared."""

    async def live_workers(self) -> list[WorkerInfo]:
        """Workers whose lease has not expired."""

    async def bus_publish(self, origin: str, kind: str, player: int | None, body: str) -> int:
        """Append an event; its id."""

    async def bus_head(self) -> int:
        """The id of the newest event (0 if none)."""

    async def bus_read(self, after: int, holes: Sequence[int], limit: int) -> list[BusRow]:
        """Events with an id above ``after`` (at most ``limit``, in id order)
        and those among ``holes``."""

    async def bus_trim(self, keep: float) -> int:
        """Delete events older than ``keep`` seconds; how many."""


def _worker(row: Sequence[Any]) -> WorkerInfo:
    return WorkerInfo(
        id=str(row[0]),
        instance=str(row[1]),
        store_kind=str(row[2]),
        bus=str(row[3]),
        address=str(row[4]),
        started_at=int(row[5]) / 1000,
        expires_in=int(row[6]) / 1000,
    )


def _held(player_id: int, worker: str, row: Sequence[Any] | None) -> PlayerHeld | None:
    """The refusal a claim by ``worker`` meets, from ``(owner, ms left)``."""
    if row is None or row[0] is None or str(row[0]) == worker or row[1] is None or int(row[1]) <= 0:
        return None
    return PlayerHeld(player_id, str(row[0]), int(row[1]) / 1000)


# --------------------------------------------------------------------- SQLite


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def sqlite_take_owner(conn: sqlite3.Connection, player_id: int, worker: str) -> PlayerHeld | None:
    """Inside a claim's transaction, after its epoch bump: refuse if another
    live worker owns the player, else make ``worker`` its owner."""
    row = conn.execute(
        "SELECT o.worker, w.expires_at - ? FROM player_owners o LEFT JOIN workers w ON w.id = o.worker"
        " WHERE o.player_id = ?",
        (_now_ms(), player_id),
    ).fetchone()
    held = _held(player_id, worker, row)
    if held is None:
        sqlite_adopt(conn, player_id, worker)
    return held


def sqlite_adopt(conn: sqlite3.Connection, player_id: int, worker: str) -> None:
    # Online there too: a claim or a registration is a login (migration 0006).
    conn.execute(
        "INSERT INTO player_owners (player_id, worker, online) VALUES (?, ?, 1)"
        " ON CONFLICT (player_id) DO UPDATE SET worker = excluded.worker, online = 1",
        (player_id, worker),
    )


class SqliteCluster:
    """The cluster methods of :class:`~baolife.db.sqlite.SqliteStore`."""

    worker: str | None = None

    if TYPE_CHECKING:
        _conn: sqlite3.Connection

        async def _run(self, fn: Callable[..., T], *args: Any) -> T: ...

        def _tx(self, body: Callable[[sqlite3.Connection], T]) -> T: ...

    async def join_cluster(
        self, info: WorkerInfo, lease: float, *, force: bool = False, fresh: bool = False
    ) -> JoinResult:
        def body(conn: sqlite3.Connection) -> JoinResult:
            now = _now_ms()
            row = conn.execute(
                "SELECT id, instance, store_kind, bus, address, started_at, expires_at - ? FROM workers WHERE id = ?",
                (now, info.id),
            ).fetchone()
            if row is not None and not force:
                holder = _worker(row)
                if holder.instance != info.instance and holder.expires_in > 0:
                    return JoinResult(holder, _sqlite_live(conn, now))
            conn.execute(
                "INSERT INTO workers (id, instance, store_kind, bus, address, started_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET instance = excluded.instance,"
                " store_kind = excluded.store_kind, bus = excluded.bus, address = excluded.address,"
                " started_at = excluded.started_at, expires_at = excluded.expires_at",
                (info.id, info.instance, info.store_kind, info.bus, info.address, now, now + round(lease * 1000)),
            )
            if fresh:
                conn.execute("DELETE FROM player_owners WHERE worker = ?", (info.id,))
            return JoinResult(None, _sqlite_live(conn, now))

        return await self._run(self._tx, body)

    async def renew_worker(self, worker: str, instance: str, lease: float) -> list[WorkerInfo] | None:
        def body(conn: sqlite3.Connection) -> list[WorkerInfo] | None:
            now = _now_ms()
            cur = conn.execute(
                "UPDATE workers SET expires_at = ? WHERE id = ? AND instance = ?",
                (now + round(lease * 1000), worker, instance),
            )
            return _sqlite_live(conn, now) if cur.rowcount == 1 else None

        return await self._run(self._tx, body)

    async def leave_cluster(self, worker: str, instance: str) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM workers WHERE id = ? AND instance = ?", (worker, instance))

        await self._run(self._tx, body)

    async def release(self, player_id: int, worker: str, epoch: int | None) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            if epoch is not None:
                row = conn.execute("SELECT epoch FROM players WHERE id = ?", (player_id,)).fetchone()
                if row is None or int(row[0]) != epoch:
                    return False
            cur = conn.execute("DELETE FROM player_owners WHERE player_id = ? AND worker = ?", (player_id, worker))
            return cur.rowcount == 1

        return await self._run(self._tx, body)

    async def owner(self, player_id: int) -> str | None:
        def read() -> str | None:
            row = self._conn.execute(
                "SELECT o.worker FROM player_owners o JOIN workers w ON w.id = o.worker"
                " WHERE o.player_id = ? AND w.expires_at > ?",
                (player_id, _now_ms()),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(read)

    async def presence(self, player_id: int) -> tuple[str, bool] | None:
        def read() -> tuple[str, bool] | None:
            row = self._conn.execute(
                "SELECT o.worker, o.online FROM player_owners o JOIN workers w ON w.id = o.worker"
                " WHERE o.player_id = ? AND w.expires_at > ?",
                (player_id, _now_ms()),
            ).fetchone()
            return None if row is None else (str(row[0]), bool(row[1]))

        return await self._run(read)

    async def mark_offline(self, worker: str, players: Sequence[tuple[int, int]]) -> int:
        def body(conn: sqlite3.Connection) -> int:
            cur = conn.executemany(
                "UPDATE player_owners SET online = 0 WHERE player_id = ? AND worker = ? AND online = 1"
                " AND EXISTS (SELECT 1 FROM players p WHERE p.id = ? AND p.epoch = ?)",
                [(pid, worker, pid, epoch) for pid, epoch in players],
            )
            return int(cur.rowcount)

        return await self._run(self._tx, body) if players else 0

    async def live_workers(self) -> list[WorkerInfo]:
        return await self._run(lambda: _sqlite_live(self._conn, _now_ms()))

    async def bus_publish(self, origin: str, kind: str, player: int | None, body: str) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO bus_events (at, origin, kind, player, body) VALUES (?, ?, ?, ?, ?)",
                (_now_ms(), origin, kind, player, body),
            )
            return int(cur.lastrowid or 0)

        return await self._run(self._tx, insert)

    async def bus_head(self) -> int:
        def read() -> int:
            return int(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM bus_events").fetchone()[0])

        return await self._run(read)

    async def bus_read(self, after: int, holes: Sequence[int], limit: int) -> list[BusRow]:
        def read() -> list[BusRow]:
            conn = self._conn
            rows = conn.execute(
                "SELECT id, origin, kind, player, body FROM bus_events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
            if holes:
                span = conn.execute(
                    "SELECT id, origin, kind, player, body FROM bus_events WHERE id BETWEEN ? AND ?",
                    (min(holes), max(holes)),
                ).fetchall()
                wanted = set(holes)
                rows += [r for r in span if int(r[0]) in wanted]
            return _bus_rows(rows)

        return await self._run(read)

    async def bus_trim(self, keep: float) -> int:
        def body(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM bus_events WHERE at < ?", (_now_ms() - round(keep * 1000),)).rowcount

        return await self._run(self._tx, body)


def _sqlite_live(conn: sqlite3.Connection, now: int) -> list[WorkerInfo]:
    rows = conn.execute(
        "SELECT id, instance, store_kind, bus, address, started_at, expires_at - ? FROM workers"
        " WHERE expires_at > ? ORDER BY id",
        (now, now),
    ).fetchall()
    return [_worker(r) for r in rows]


def _bus_rows(rows: Sequence[Sequence[Any]]) -> list[BusRow]:
    out = [BusRow(int(r[0]), str(r[1]), str(r[2]), None if r[3] is None else int(r[3]), str(r[4])) for r in rows]
    out.sort(key=lambda r: r.id)
    return out


# --------------------------------------------------------------------- MySQL

Conn = Any  # aiomysql.Connection

# The database's clock in milliseconds, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000
# AS SIGNED), written out in each statement (SQL is constant text): every
# worker reads the same clock.
M_TAKE_OWNER_READ = (
    "SELECT o.worker, w.expires_at - CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
    " FROM player_owners o LEFT JOIN workers w ON w.id = o.worker WHERE o.player_id = %s"
)
M_ADOPT = (
    "INSERT INTO player_owners (player_id, worker, online) VALUES (%s, %s, 1)"
    " ON DUPLICATE KEY UPDATE worker = VALUES(worker), online = 1"
)
M_WORKER_READ = (
    "SELECT id, instance, store_kind, bus, address, started_at,"
    " expires_at - CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) FROM workers WHERE id = %s FOR UPDATE"
)
M_WORKER_PUT = (
    "INSERT INTO workers (id, instance, store_kind, bus, address, started_at, expires_at)"
    " VALUES (%s, %s, %s, %s, %s, CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED),"
    " CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) + %s) ON DUPLICATE KEY UPDATE"
    " instance = VALUES(instance), store_kind = VALUES(store_kind), bus = VALUES(bus),"
    " address = VALUES(address), started_at = VALUES(started_at), expires_at = VALUES(expires_at)"
)
M_WORKERS_LIVE = (
    "SELECT id, instance, store_kind, bus, address, started_at,"
    " expires_at - CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) FROM workers"
    " WHERE expires_at > CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) ORDER BY id"
)
M_RENEW = (
    "UPDATE workers SET expires_at = CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) + %s WHERE id = %s AND instance = %s"
)
M_LEAVE = "DELETE FROM workers WHERE id = %s AND instance = %s"
M_DISOWN = "DELETE FROM player_owners WHERE worker = %s"
M_RELEASE_LOCK = "SELECT epoch FROM players WHERE id = %s FOR UPDATE"
# A release's DELETE runs in the batch that took the player's row lock
# (M_RELEASE_LOCK, just before it): the epoch it reads is the locked row's.
M_RELEASE = (
    "DELETE FROM player_owners WHERE player_id = %s AND worker = %s AND EXISTS (SELECT 1 FROM players WHERE id = %s)"
)
M_RELEASE_AT = (
    "DELETE FROM player_owners WHERE player_id = %s AND worker = %s"
    " AND EXISTS (SELECT 1 FROM players WHERE id = %s AND epoch = %s)"
)
M_OWNER = (
    "SELECT o.worker FROM player_owners o JOIN workers w ON w.id = o.worker"
    " WHERE o.player_id = %s AND w.expires_at > CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
)
M_PRESENCE = (
    "SELECT o.worker, o.online FROM player_owners o JOIN workers w ON w.id = o.worker"
    " WHERE o.player_id = %s AND w.expires_at > CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
)
# The players' rows were locked (in id order) by the statement before, in
# the same batch: the epochs compared are those of the locked rows.
_M_OFFLINE = (
    "UPDATE player_owners o JOIN players p ON p.id = o.player_id SET o.online = 0"
    " WHERE o.worker = %s AND o.online = 1 AND o.player_id IN ({}) AND (p.id, p.epoch) IN ({})"
)
M_BUS_PUBLISH = (
    "INSERT INTO bus_events (at, origin, kind, player, body)"
    " VALUES (CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED), %s, %s, %s, %s)"
)
M_BUS_HEAD = "SELECT COALESCE(MAX(id), 0) FROM bus_events"
M_BUS_READ = "SELECT id, origin, kind, player, body FROM bus_events WHERE id > %s ORDER BY id LIMIT %s"
# Holes (ids skipped by a read, maybe committed later) are read back by their
# span; the rows outside the holes are dropped here.
M_BUS_SPAN = "SELECT id, origin, kind, player, body FROM bus_events WHERE id BETWEEN %s AND %s"
M_BUS_TRIM = "DELETE FROM bus_events WHERE at < CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED) - %s LIMIT 10000"


def _mariadb(conn: Conn) -> bool:
    return "MariaDB" in (conn.get_server_info() or "")


async def _send(cur: Any, text: str, args: Sequence[object], bound: float, mariadb: bool) -> None:
    statement, params = bounded(text, args, bound, mariadb)
    await cur.execute(statement, params)


def mysql_owner_read(player_id: int) -> tuple[str, tuple[object, ...]]:
    """The statement a claim's transaction sends after its epoch bump (which
    holds the player's row lock), in the same round trip: the owner row as
    it is, with its worker's lease left. The claim decides on it with
    :func:`mysql_held`: take the player (:func:`mysql_adopt`) or undo its
    bump (another live worker owns the player). The owner and worker rows
    are read without locks (a claim must not queue behind other claims of
    the same old owner, nor behind its renewal)."""
    return M_TAKE_OWNER_READ, (player_id,)


def mysql_held(player_id: int, worker: str, row: Sequence[Any] | None) -> PlayerHeld | None:
    """The refusal a claim by ``worker`` meets, from the row of
    :func:`mysql_owner_read`."""
    return _held(player_id, worker, row)


def mysql_adopt(player_id: int, worker: str) -> tuple[str, tuple[object, ...]]:
    """The statement that makes ``worker`` the owner of a player (in a
    transaction holding the player's row lock)."""
    return M_ADOPT, (player_id, worker)


async def _m_join(conn: Conn, bound: float, info: WorkerInfo, lease_ms: int, force: bool, fresh: bool) -> JoinResult:
    mariadb = _mariadb(conn)
    cur = await conn.cursor()
    await cur.execute("BEGIN")
    await _send(cur, M_WORKER_READ, (info.id,), bound, mariadb)
    row = await cur.fetchone()
    if row is not None and not force:
        holder = _worker(row)
        if holder.instance != info.instance and holder.expires_in > 0:
            await cur.execute("ROLLBACK")
            return JoinResult(holder, await _m_live(cur, bound, mariadb))
    args = (info.id, info.instance, info.store_kind, info.bus, info.address, lease_ms)
    await _send(cur, M_WORKER_PUT, args, bound, mariadb)
    if fresh:
        await _send(cur, M_DISOWN, (info.id,), bound, mariadb)
    await cur.execute("COMMIT")
    return JoinResult(None, await _m_live(cur, bound, mariadb))


async def _m_live(cur: Any, bound: float, mariadb: bool) -> list[WorkerInfo]:
    await _send(cur, M_WORKERS_LIVE, (), bound, mariadb)
    return [_worker(r) for r in await cur.fetchall()]


async def _m_renew(conn: Conn, bound: float, worker: str, instance: str, lease_ms: int) -> list[WorkerInfo] | None:
    mariadb = _mariadb(conn)
    cur = await conn.cursor()
    await _send(cur, M_RENEW, (lease_ms, worker, instance), bound, mariadb)
    if cur.rowcount != 1:
        return None
    return await _m_live(cur, bound, mariadb)


async def _m_workers(conn: Conn, bound: float) -> list[WorkerInfo]:
    cur = await conn.cursor()
    return await _m_live(cur, bound, _mariadb(conn))


async def _m_release(conn: Conn, bound: float, player_id: int, worker: str, epoch: int | None) -> bool:
    """One round trip: lock the player's row (as a claim and a save take
    it, before the owner row), drop the owner row if it is ``worker``'s and
    the epoch is still ``epoch`` (the DELETE's own condition), commit."""
    release: tuple[str, Sequence[object]]
    if epoch is None:
        release = (M_RELEASE, (player_id, worker, player_id))
    else:
        release = (M_RELEASE_AT, (player_id, worker, player_id, epoch))
    steps = [(M_RELEASE_LOCK, (player_id,)), release]
    cur = await conn.cursor()
    _, deleted = await send_batch(cur, steps, bound, _mariadb(conn), begin=True, commit=True)
    return deleted.rowcount == 1


def _m_offline_statement(count: int) -> str:
    """Clear the flag of ``count`` players; parameters: the worker, the
    ``count`` ids, then ``id, epoch`` of each."""
    return _M_OFFLINE.format(", ".join(["%s"] * count), ", ".join(["(%s, %s)"] * count))


async def _m_offline(conn: Conn, bound: float, worker: str, players: Sequence[tuple[int, int]]) -> int:
    """Like :func:`_m_release`, the owner rows are written under their
    players' row locks, taken first (as a claim and a save take them, in id
    order), so this never deadlocks with either; the UPDATE's own condition
    compares the epochs: one round trip a batch."""
    wanted = dict(players)
    ids = sorted(wanted)
    pairs = [x for pid in ids for x in (pid, wanted[pid])]
    steps: list[tuple[str, Sequence[object]]] = [
        (lock_epochs_statement(len(ids)), ids),
        (_m_offline_statement(len(ids)), [worker, *ids, *pairs]),
    ]
    cur = await conn.cursor()
    _, cleared = await send_batch(cur, steps, bound, _mariadb(conn), begin=True, commit=True)
    return cleared.rowcount


async def _m_one(conn: Conn, bound: float, statement: str, args: Sequence[object]) -> Any:
    cur = await conn.cursor()
    await _send(cur, statement, args, bound, _mariadb(conn))
    row = await cur.fetchone()
    return None if row is None else row[0]


async def _m_presence(conn: Conn, bound: float, player_id: int) -> tuple[str, bool] | None:
    cur = await conn.cursor()
    await _send(cur, M_PRESENCE, (player_id,), bound, _mariadb(conn))
    row = await cur.fetchone()
    return None if row is None else (str(row[0]), bool(row[1]))


async def _m_affected(conn: Conn, bound: float, statement: str, args: Sequence[object]) -> int:
    cur = await conn.cursor()
    await _send(cur, statement, args, bound, _mariadb(conn))
    return int(cur.rowcount)


async def _m_publish(conn: Conn, bound: float, args: Sequence[object]) -> int:
    cur = await conn.cursor()
    await _send(cur, M_BUS_PUBLISH, args, bound, _mariadb(conn))
    return int(cur.lastrowid)


async def _m_bus_read(conn: Conn, bound: float, after: int, holes: Sequence[int], limit: int) -> list[BusRow]:
    mariadb = _mariadb(conn)
    cur = await conn.cursor()
    await _send(cur, M_BUS_READ, (after, limit), bound, mariadb)
    rows = list(await cur.fetchall())
    if holes:
        await _send(cur, M_BUS_SPAN, (min(holes), max(holes)), bound, mariadb)
        wanted = set(holes)
        rows += [r for r in await cur.fetchall() if int(r[0]) in wanted]
    return _bus_rows(rows)


class MysqlCluster:
    """The cluster methods of :class:`~baolife.db.mysql.MysqlStore`."""

    worker: str | None = None

    if TYPE_CHECKING:
        from .mysql_dialect import MysqlOptions

        options: MysqlOptions

        async def _call(self, what: str, deadline: float, body: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        async def _call_lease(self, what: str, deadline: float, body: Callable[..., Awaitable[T]], *args: Any) -> T: ...

        def _bound(self, deadline: float) -> float: ...

    def _quick(self) -> tuple[float, float]:
        t = self.options.timeout
        return t, self._bound(t)

    async def join_cluster(
        self, info: WorkerInfo, lease: float, *, force: bool = False, fresh: bool = False
    ) -> JoinResult:
        t, b = self._quick()
        return await self._call("join_cluster", t, _m_join, b, info, round(lease * 1000), force, fresh)

    async def renew_worker(self, worker: str, instance: str, lease: float) -> list[WorkerInfo] | None:
        t, b = self._quick()
        return await self._call_lease("renew_worker", t, _m_renew, b, worker, instance, round(lease * 1000))

    async def leave_cluster(self, worker: str, instance: str) -> None:
        t, b = self._quick()
        await self._call("leave_cluster", t, _m_affected, b, M_LEAVE, (worker, instance))

    async def release(self, player_id: int, worker: str, epoch: int | None) -> bool:
        t, b = self._quick()
        return await self._call("release", t, _m_release, b, player_id, worker, epoch)

    async def owner(self, player_id: int) -> str | None:
        t, b = self._quick()
        found = await self._call("owner", t, _m_one, b, M_OWNER, (player_id,))
        return None if found is None else str(found)

    async def presence(self, player_id: int) -> tuple[str, bool] | None:
        t, b = self._quick()
        return await self._call("presence", t, _m_presence, b, player_id)

    async def mark_offline(self, worker: str, players: Sequence[tuple[int, int]]) -> int:
        if not players:
            return 0
        t, b = self._quick()
        return await self._call("mark_offline", t, _m_offline, b, worker, list(players))

    async def live_workers(self) -> list[WorkerInfo]:
        t, b = self._quick()
        return await self._call("live_workers", t, _m_workers, b)

    async def bus_publish(self, origin: str, kind: str, player: int | None, body: str) -> int:
        t, b = self._quick()
        return await self._call("bus_publish", t, _m_publish, b, (origin, kind, player, body))

    async def bus_head(self) -> int:
        t, b = self._quick()
        return int(await self._call("bus_head", t, _m_one, b, M_BUS_HEAD, ()))

    async def bus_read(self, after: int, holes: Sequence[int], limit: int) -> list[BusRow]:
        t, b = self._quick()
        return await self._call("bus_read", t, _m_bus_read, b, after, list(holes), limit)

    async def bus_trim(self, keep: float) -> int:
        t, b = self._quick()
        return await self._call("bus_trim", t, _m_affected, b, M_BUS_TRIM, (round(keep * 1000),))
