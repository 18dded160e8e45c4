"""The production store: MySQL or MariaDB through aiomysql, in a trio-asyncio loop.

This is the only module of the server that runs asyncio code. Everything
else, the connection pool included (:mod:`baolife.db.pool`), is plain trio;
what is said to the server is in :mod:`baolife.db.mysql_dialect`.

How a store call runs: under its own deadline (``timeout`` or
``save_timeout`` from the URL) it borrows a connection from the bounded pool
(waiting, or opening one, counts against the deadline), then crosses into
asyncio **once**: one coroutine sends all the statements of the call (one
transaction at most) and reads their results. If that coroutine does not
finish normally (an error, the deadline, any trio cancel) the connection is
closed and never lent again, so no connection with a half-read result or an
open transaction goes back to the pool. The server may still be running the
statement of a cancelled call: every statement is bounded on the server too,
and saves are fenced by epoch, so applying one late changes nothing wrong.

aiomysql and PyMySQL errors are translated here: connection trouble,
timeouts, lock waits and deadlocks become ``StoreUnavailable`` (retry later);
other server errors ``StoreError``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

import aiomysql
import attrs
import pymysql
import trio
import trio_asyncio

from . import mysql_dialect as sql
from .migrations import load_migrations
from .mysql_dialect import MysqlOptions, bounded
from .pool import ConnectionPool, PoolClosed
from .store import (
    Claim,
    FirstState,
    QueryStats,
    SaveRow,
    StoreCorrupt,
    StoreError,
    StoreStatistics,
    StoreUnavailable,
)

__all__ = ["MysqlStore", "open_mysql"]

T = TypeVar("T")
Conn: TypeAlias = Any  # aiomysql.Connection; aiomysql has no type hints
# The state bytes sent in one INSERT (twice that as hex). The server refuses
# packets over max_allowed_packet (16 MiB by default on MariaDB), and building
# a statement holds the thread that runs the ticks, so a large batch is split
# into several statements of one transaction.
STATEMENT_BYTES = 1024 * 1024
CLOSE_GRACE = 2.0

# Connection trouble and conditions that pass: the caller keeps its data and retries.
_UNAVAILABLE = (
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
    OSError,
    asyncio.TimeoutError,
    PoolClosed,
)


def _is_mariadb(conn: Conn) -> bool:
    return "MariaDB" in (conn.get_server_info() or "")


def _close(conn: Conn) -> None:
    # Drops the socket at once (no goodbye to the server): for connections
    # that may be mid-result, and safe to call from trio code.
    conn.close()


def _compressed(rows: Sequence[SaveRow]) -> list[SaveRow]:
    """The rows in id order (the order their locks are taken in) with their
    states compressed for storage."""
    return [attrs.evolve(row, state=sql.encode_state(row.state)) for row in sorted(rows, key=lambda r: r.player_id)]


def _usable(conn: Conn) -> bool:
    """An idle connection may be lent again: open, no transaction left open,
    and the server has not hung up (aiomysql's own pool checks the same)."""
    if conn.closed or conn.get_transaction_status():
        return False
    reader = getattr(conn, "_reader", None)
    return reader is not None and not reader.at_eof() and reader.exception() is None


# --------------------------------------------------------------------- asyncio side


async def _open(options: MysqlOptions) -> Conn:
    conn = await aiomysql.connect(
        host=options.host,
        port=options.port,
        user=options.user,
        password=options.password,
        db=options.database,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=options.connect_timeout,
        local_infile=False,
    )
    try:
        cur = await conn.cursor()
        for statement, args in sql.session_setup(options, _is_mariadb(conn)):
            await cur.execute(statement, args)
    except BaseException:
        conn.close()
        raise
    return conn


async def _send(cur: Any, text: str, args: Sequence[object], bound: float, mariadb: bool) -> None:
    """Execute ``text`` with ``args`` as parameters, bounded on the server."""
    statement, params = bounded(text, args, bound, mariadb)
    await cur.execute(statement, params)


async def _guarded(conn: Conn, body: Callable[..., Awaitable[T]], args: Sequence[Any]) -> T:
    """Run ``body(conn, *args)``; on any exception (asyncio's cancel included)
    close the connection before it can be reused."""
    try:
        return await body(conn, *args)
    except BaseException:
        conn.close()
        raise


async def _ping(conn: Conn, bound: float) -> None:
    cur = await conn.cursor()
    # One autocommitted UPDATE of the heartbeat row: a write, see sql.PING.
    await _send(cur, sql.PING, (time.time_ns(),), bound, _is_mariadb(conn))


async def _find_account(conn: Conn, bound: float, token_hash: bytes) -> int | None:
    cur = await conn.cursor()
    await _send(cur, sql.FIND_ACCOUNT, (token_hash,), bound, _is_mariadb(conn))
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def _create_account(
    conn: Conn, bound: float, name: str, token_hash: bytes, now: int, first_state: FirstState | None
) -> int:
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    await cur.execute("BEGIN")
    await _send(cur, sql.CREATE_ACCOUNT, (token_hash, name, now), bound, mariadb)
    pid = int(cur.lastrowid)
    state: bytes | None = None
    version = 0
    if first_state is not None:
        # A newborn's document is a few hundred bytes: compressing it here costs less than a thread hop.
        document, version = first_state(pid)
        state = sql.encode_state(document)
    await _send(cur, sql.CREATE_PLAYER, (pid, state, sql.CODEC_COMPRESSED, version, now), bound, mariadb)
    await cur.execute("COMMIT")
    return pid


async def _claim(conn: Conn, bound: float, player_id: int) -> Claim:
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    await cur.execute("BEGIN")
    await _send(cur, sql.CLAIM_BUMP, (player_id,), bound, mariadb)
    bumped = cur.rowcount
    await _send(cur, sql.CLAIM_READ, (player_id,), bound, mariadb)
    row = await cur.fetchone()
    if bumped != 1 or row is None:
        await cur.execute("ROLLBACK")
        raise StoreCorrupt(f"player {player_id} has an account but no player row")
    await cur.execute("COMMIT")
    name, state, codec, epoch = row
    if state is not None:
        try:
            state = sql.decode_state(bytes(state), int(codec))
        except ValueError as exc:
            raise StoreCorrupt(f"player {player_id}: {exc}") from None
    return Claim(
        player_id=player_id,
        name=str(name),
        state=state,
        previous_epoch=int(epoch) - 1,
        epoch=int(epoch),
    )


async def _save(conn: Conn, bound: float, rows: list[SaveRow], now: int) -> set[int]:
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    await cur.execute("BEGIN")
    # Lock the rows (in id order, as every saver does, so two processes
    # saving overlapping batches queue rather than deadlock) and read the
    # owner epochs; a claim by another process now waits for our commit.
    ids = [row.player_id for row in rows]
    await _send(cur, sql.lock_epochs_statement(len(ids)), ids, bound, mariadb)
    stored = {int(pid): int(epoch) for pid, epoch in await cur.fetchall()}
    accepted = [row for row in rows if stored.get(row.player_id) == row.epoch]
    for part in sql.split_by_size([len(row.state) for row in accepted], STATEMENT_BYTES):
        params: list[object] = []
        for i in part:
            row = accepted[i]
            params += (row.player_id, row.state.hex(), sql.CODEC_COMPRESSED, row.schema_version, row.epoch, now)
        await _send(cur, sql.save_statement(len(part)), params, bound, mariadb)
    await cur.execute("COMMIT")
    return {row.player_id for row in rows if stored.get(row.player_id) != row.epoch}


async def _add_ai_usage(conn: Conn, bound: float, day: str, player_id: int, calls: int, cost: float) -> None:
    cur = await conn.cursor()
    await _send(cur, sql.ADD_AI_USAGE, (day, player_id, calls, cost), bound, _is_mariadb(conn))


async def _ai_usage(conn: Conn, bound: float, day: str) -> tuple[dict[int, int], float]:
    cur = await conn.cursor()
    await _send(cur, sql.AI_USAGE, (day,), bound, _is_mariadb(conn))
    rows = await cur.fetchall()
    return {int(r[0]): int(r[1]) for r in rows}, float(sum(r[2] for r in rows))


async def _applied_migrations(cur: Any) -> set[int]:
    await cur.execute(sql.MIGRATIONS_TABLE)
    await cur.execute(sql.MIGRATIONS_APPLIED)
    return {int(r[0]) for r in await cur.fetchall()}


async def _pending_migrations(conn: Conn) -> list[str]:
    cur = await conn.cursor()
    applied = await _applied_migrations(cur)
    return [m.name for m in load_migrations("mysql") if m.version not in applied]


async def _migrate(conn: Conn, lock_wait: float) -> list[str]:
    done = []
    cur = await conn.cursor()
    # Two processes starting at once: the second waits, then finds nothing to do.
    await cur.execute(sql.MIGRATE_LOCK, (max(1, int(lock_wait)),))
    (locked,) = await cur.fetchone()
    if locked != 1:
        raise StoreUnavailable("another process holds the migration lock")
    # On an error the connection is closed, which releases the lock too.
    applied = await _applied_migrations(cur)
    for m in load_migrations("mysql"):
        if m.version in applied:
            continue
        # DDL commits implicitly in MySQL: a migration is a list of
        # statements safe to run again, recorded once all have run.
        for statement in m.statements:
            await cur.execute(statement)
        await cur.execute(sql.MIGRATION_RECORD, (m.version, m.name, int(time.time())))
        done.append(m.name)
    await cur.execute(sql.MIGRATE_UNLOCK)
    return done


async def _quit(conns: list[Conn]) -> None:
    for conn in conns:
        try:
            await conn.ensure_closed()
        except (OSError, RuntimeError):
            conn.close()


# --------------------------------------------------------------------- trio side


class MysqlStore:
    """The :class:`~baolife.db.store.Store` on MySQL/MariaDB. Made by
    :func:`open_mysql`, which owns the asyncio loop it runs in."""

    kind = "mysql"

    def __init__(self, options: MysqlOptions, loop: asyncio.AbstractEventLoop, pool_size: int) -> None:
        self.options = options
        self._loop: Any = loop
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            pool_size, connect=self._connect, close=_close, usable=_usable, max_idle=options.max_idle
        )
        self._stats = QueryStats()
        self._closed = False

    async def _connect(self) -> Conn:
        conn: Conn = await self._loop.run_aio_coroutine(_open(self.options))
        return conn

    async def _call(self, what: str, deadline: float, body: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``body(conn, *args)`` on a pooled connection within ``deadline``
        seconds; see the module docstring."""
        started = trio.current_time()
        failed = True
        timed_out = False
        try:
            with trio.move_on_after(deadline):
                async with self._pool.borrow() as conn:
                    result: T = await self._loop.run_aio_coroutine(_guarded(conn, body, args))
                failed = False
                return result
            timed_out = True
            raise StoreUnavailable(f"mysql {what}: no answer within {deadline:g} s")
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"mysql {what}: {exc}") from exc
        except pymysql.err.MySQLError as exc:
            raise StoreError(f"mysql {what}: {exc}") from exc
        finally:
            self._stats.observe(trio.current_time() - started, failed=failed, timed_out=timed_out)

    def _bound(self, deadline: float) -> float:
        return self.options.server_bound(deadline)

    # ----------------------------------------------------------------- the Store interface

    async def migrate(self) -> list[str]:
        o = self.options
        return await self._call("migrate", o.migrate_timeout, _migrate, o.migrate_timeout)

    async def pending_migrations(self) -> list[str]:
        return await self._call("pending_migrations", self.options.timeout, _pending_migrations)

    async def create_account(self, name: str, token_hash: bytes, first_state: FirstState | None = None) -> int:
        t = self.options.timeout
        now = int(time.time())
        return await self._call(
            "create_account", t, _create_account, self._bound(t), name, token_hash, now, first_state
        )

    async def find_account(self, token_hash: bytes) -> int | None:
        t = self.options.timeout
        return await self._call("find_account", t, _find_account, self._bound(t), token_hash)

    async def claim(self, player_id: int) -> Claim:
        t = self.options.timeout
        return await self._call("claim", t, _claim, self._bound(t), player_id)

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        """Save ``rows`` (distinct players) in one transaction: lock them,
        write those whose epoch matches (compressed) in multi-row statements, commit.
        Returns the ids refused (another process owns them, or no such row);
        those are never written. Safe to repeat: same rows, same result."""
        if not rows:
            return set()
        # zlib lets go of the GIL: compressing in a worker thread keeps the
        # tick loop running (and uses the other core) while a batch is packed.
        ordered = await trio.to_thread.run_sync(_compressed, rows)
        t = self.options.save_timeout
        return await self._call("save", t, _save, self._bound(t), ordered, int(time.time()))

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        t = self.options.timeout
        await self._call("add_ai_usage", t, _add_ai_usage, self._bound(t), day, player_id, calls, cost)

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        t = self.options.timeout
        return await self._call("ai_usage", t, _ai_usage, self._bound(t), day)

    async def ping(self) -> None:
        t = min(self.options.timeout, 2.0)
        await self._call("ping", t, _ping, self._bound(t))

    def statistics(self) -> StoreStatistics:
        pool = self._pool.statistics()
        return self._stats.report(
            self.kind,
            pool_size=pool.size,
            pool_open=pool.open,
            pool_in_use=pool.in_use,
            pool_waiting=pool.waiting,
            pool_acquires=pool.borrows,
            pool_wait_seconds=pool.wait_seconds,
        )

    async def aclose(self) -> None:
        """Stop lending connections and close the idle ones (saying goodbye to
        the server when it answers within a moment). Idempotent."""
        if self._closed:
            return
        self._closed = True
        idle = self._pool.close()
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE):
            await self._loop.run_aio_coroutine(_quit(idle))
        for conn in idle:
            conn.close()


@asynccontextmanager
async def open_mysql(url: str, *, pool_size: int = 8) -> AsyncIterator[MysqlStore]:
    """The MySQL store for ``url`` (see :mod:`baolife.db.mysql_dialect` for
    its options), with at most ``pool_size`` connections. Opens the asyncio
    loop the store runs in and closes both on exit. Connections are opened
    when first needed, so this does not fail when the server is down; the
    first call does (``StoreUnavailable``)."""
    try:
        options = MysqlOptions.from_url(url)
    except ValueError as exc:
        raise StoreError(f"database URL: {exc}") from None
    try:
        async with trio_asyncio.open_loop() as loop:
            store = MysqlStore(options, loop, pool_size)
            try:
                yield store
            finally:
                await store.aclose()
    except BaseExceptionGroup as group:
        # The loop runs its tasks in nurseries, which wrap whatever the body
        # raised in exception groups; callers of a store expect the error
        # itself (as from SQLite), so a lone exception is re-raised bare.
        sole = _sole(group)
        if sole is None:
            raise
        raise sole from sole.__cause__  # keeps its own cause, drops the group


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc
