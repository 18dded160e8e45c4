"""The production store: MySQL or MariaDB through aiomysql, in a trio-asyncio loop.

This module runs the server's asyncio code (with the statement bodies it
calls: the cluster's in :mod:`baolife.db.cluster`, the one-round-trip
batches of :mod:`baolife.db.mysql_batch`). Everything else, the connection
pool included (:mod:`baolife.db.pool`), is plain trio; what is said to the
server is in :mod:`baolife.db.mysql_dialect`.

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

One piece: every method has the same shape (borrow, cross into asyncio once,
translate errors), and the asyncio boundary stays in this one module; the
SQL text is in mysql_dialect.py and the cluster's in cluster.py.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

import aiomysql
import attrs
import pymysql
import trio
import trio_asyncio

from . import mysql_dialect as sql
from .batcher import Batcher
from .cluster import MysqlCluster, PlayerHeld, mysql_adopt, mysql_held, mysql_owner_read
from .migrations import load_migrations
from .mysql_batch import send_batch
from .mysql_dialect import MysqlOptions, bounded
from .pool import ConnectionPool, PoolClosed
from .store import (
    AccountInfo,
    AccountLogin,
    AiDay,
    AuditEntry,
    Ban,
    Claim,
    FirstState,
    NoticeRow,
    Progress,
    QueryStats,
    Saved,
    SaveRow,
    StoreCorrupt,
    StoreError,
    StoreStatistics,
    StoreUnavailable,
)

__all__ = ["MysqlStore", "open_mysql"]

T = TypeVar("T")
Conn: TypeAlias = Any  # aiomysql.Connection; aiomysql has no type hints
# The state bytes sent in one INSERT (4/3 of that as base64). The server refuses
# packets over max_allowed_packet (16 MiB by default on MariaDB), and building
# a statement holds the thread that runs the ticks, so a large batch is split
# into several statements of one transaction.
STATEMENT_BYTES = 1024 * 1024
CLOSE_GRACE = 2.0
# The most logins (lookups, claims) one call sends together: each claim
# reads a compressed state (a few KB for a grown life).
BATCH_KEYS = 64

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


def _compressed(rows: Sequence[SaveRow], codec: int) -> list[SaveRow]:
    """The rows, in their order, with their states compressed for storage
    with ``codec`` (those already so, as they are)."""
    packed = []
    for row in rows:
        if row.state is not None and row.stored != codec:
            if row.stored is not None:
                raise ValueError(f"player {row.player_id}: a state stored with codec {row.stored}, not {codec}")
            row = attrs.evolve(row, state=sql.encode_state(row.state, codec), stored=codec)
        packed.append(row)
    return packed


def _usable(conn: Conn) -> bool:
    """An idle connection may be lent again: open, no transaction left open,
    and the server has not hung up (aiomysql's own pool checks the same)."""
    if conn.closed or conn.get_transaction_status():
        return False
    reader = getattr(conn, "_reader", None)
    return reader is not None and not reader.at_eof() and reader.exception() is None


# --------------------------------------------------------------------- asyncio side


@functools.lru_cache(maxsize=8)
def tls_context(options: MysqlOptions) -> ssl.SSLContext | None:
    """The TLS context of the URL's ``ssl_*`` options (None: plain text);
    built once per URL, its files read then."""
    if options.ssl_mode == "disabled":
        return None
    context = ssl.create_default_context(cafile=options.ssl_ca or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if options.ssl_mode == "required":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif options.ssl_mode == "verify_ca":
        context.check_hostname = False
    if options.ssl_cert:
        context.load_cert_chain(options.ssl_cert, options.ssl_key)
    return context


async def _open(options: MysqlOptions) -> Conn:
    try:
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
            ssl=tls_context(options),
        )
    except pymysql.err.OperationalError as exc:
        # aiomysql reports a failed TLS handshake as "Can't connect": say why.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLError):
            raise pymysql.err.OperationalError(2026, f"TLS to {options.host}:{options.port} failed: {cause}") from exc
        raise
    if options.ssl_mode != "disabled" and not getattr(conn, "_secure", False):
        # aiomysql goes on in plain text when the server offers no TLS: refuse.
        conn.close()
        raise pymysql.err.OperationalError(2026, "TLS required by ssl_mode, but the server does not offer it")
    try:
        cur = await conn.cursor()
        # In one round trip: a connection opened for a call is part of its wait.
        setup = sql.session_setup(options, _is_mariadb(conn))
        statements = sql.batch([statement for statement, _ in setup])
        await cur.execute(statements, [a for _, args in setup for a in args])
        while await cur.nextset():
            pass
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


async def _find_logins(conn: Conn, bound: float, token_hashes: list[bytes]) -> list[AccountLogin | None]:
    """The accounts (with their bans) of these tokens, in one round trip
    (one statement each: a :class:`~baolife.db.batcher.Batcher` sends the
    lookups that waited together)."""
    steps = [(sql.FIND_LOGIN, (token_hash,)) for token_hash in token_hashes]
    done = await send_batch(await conn.cursor(), steps, bound, _is_mariadb(conn))
    out: list[AccountLogin | None] = []
    for result in done:
        r = result.rows[0] if result.rows else None
        if r is None:
            out.append(None)
            continue
        ban = None if r[1] is None else Ban(str(r[1]), None if r[2] is None else int(r[2]), str(r[3]), int(r[4]))
        out.append(AccountLogin(int(r[0]), ban))
    return out


async def _create_account(
    conn: Conn,
    bound: float,
    name: str,
    token_hash: bytes,
    now: int,
    first_state: FirstState | None,
    worker: str | None = None,
    codec: int = sql.CODEC_ZSTD_DICT,
) -> int:
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    # Two round trips: the account (its id is in the first state), then the
    # player row, its owner and the COMMIT.
    (account,) = await send_batch(cur, [(sql.CREATE_ACCOUNT, (token_hash, name, now))], bound, mariadb, begin=True)
    pid = account.lastrowid
    state: bytes | None = None
    version = 0
    if first_state is not None:
        # A newborn's document is a few hundred bytes: compressing it here costs less than a thread hop.
        document, version = first_state(pid)
        state = sql.encode_state(document, codec)
    steps: list[tuple[str, Sequence[object]]] = [(sql.CREATE_PLAYER, (pid, state, codec, version, now))]
    if worker is not None:  # the creating worker owns the newborn (baolife.db.cluster)
        steps.append(mysql_adopt(pid, worker))
    await send_batch(cur, steps, bound, mariadb, commit=True)
    return pid


async def _claim_many(
    conn: Conn, bound: float, player_ids: list[int], worker: str | None = None
) -> list[Claim | PlayerHeld | StoreCorrupt]:
    """Claim distinct players in one transaction (a :class:`~baolife.db.batcher.Batcher`
    sends the logins that waited together): each one's answer, in order.

    Per player, in the first round trip: the epoch bump (which takes the row
    lock; in id order, as saves and releases take them, so claims never
    deadlock with those), the owner row of a cluster, and the read. Without
    a worker nothing is left to decide: the console's "last login"
    (baolife.admin: a claim is a worker loading the player) and the COMMIT
    go in the same trip (for a player row that is missing it commits a "last
    login" only). A worker's claim decides per player on the owner row it
    read: in the second round trip it takes the free ones (owner row, last
    login) and undoes the bump of the others (held by another live worker:
    nothing of theirs changes), then commits."""
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    ids = sorted(player_ids)
    now = int(time.time())
    answers: dict[int, Claim | PlayerHeld | StoreCorrupt] = {}
    if worker is None:
        steps: list[tuple[str, Sequence[object]]] = []
        for pid in ids:
            steps += [(sql.CLAIM_BUMP, (pid,)), (LOGIN_AT, (pid, now)), (sql.CLAIM_READ, (pid,))]
        done = await send_batch(cur, steps, bound, mariadb, begin=True, commit=True)
        for i, pid in enumerate(ids):
            bump, _, read = done[3 * i : 3 * i + 3]
            answers[pid] = _claimed(pid, bump.rowcount, read.rows)
        return [answers[pid] for pid in player_ids]
    steps = []
    for pid in ids:
        steps += [(sql.CLAIM_BUMP, (pid,)), mysql_owner_read(pid), (sql.CLAIM_READ, (pid,))]
    done = await send_batch(cur, steps, bound, mariadb, begin=True)
    finish: list[tuple[str, Sequence[object]]] = []
    for i, pid in enumerate(ids):
        bump, owner, read = done[3 * i : 3 * i + 3]
        missing = bump.rowcount != 1 or not read.rows
        held = None if missing else mysql_held(pid, worker, next(iter(owner.rows), None))
        if missing or held is not None:
            if bump.rowcount == 1:
                finish.append((sql.CLAIM_UNBUMP, (pid,)))
            answers[pid] = held if held is not None else _claimed(pid, bump.rowcount, read.rows)
        else:
            finish += [mysql_adopt(pid, worker), (LOGIN_AT, (pid, now))]
            answers[pid] = _claimed(pid, bump.rowcount, read.rows)
    if finish:
        await send_batch(cur, finish, bound, mariadb, commit=True)
    else:
        await cur.execute("ROLLBACK")
    return [answers[pid] for pid in player_ids]


def _claimed(player_id: int, bumped: int, rows: list[Any]) -> Claim | StoreCorrupt:
    """A claim's answer from its bump's row count and its read's rows."""
    if bumped != 1 or not rows:
        return StoreCorrupt(f"player {player_id} has an account but no player row")
    name, state, codec, epoch, age_days, money, low_money = rows[0]
    if state is not None:
        try:
            state = sql.decode_state(bytes(state), int(codec))
        except ValueError as exc:
            return StoreCorrupt(f"player {player_id}: {exc}")
    return Claim(
        player_id=player_id,
        name=str(name),
        state=state,
        previous_epoch=int(epoch) - 1,
        epoch=int(epoch),
        progress=None if age_days is None else Progress(int(age_days), int(money), int(low_money)),
    )


async def _save(conn: Conn, bound: float, rows: list[SaveRow], now: int, codec: int) -> set[int]:
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    # Round trip 1: lock the rows (in id order, as every saver does, so two
    # processes saving overlapping batches queue rather than deadlock) and
    # read the owner epochs; a claim by another process now waits for our commit.
    ids = [row.player_id for row in rows]
    (locked,) = await send_batch(cur, [(sql.lock_epochs_statement(len(ids)), ids)], bound, mariadb, begin=True)
    stored = {int(pid): int(epoch) for pid, epoch in locked.rows}
    accepted = [row for row in rows if stored.get(row.player_id) == row.epoch]
    # Round trip 2: every write and the COMMIT (one more per statement-size
    # budget of states beyond the first: see _save_batches).
    for steps, last in _save_batches(accepted, now, codec):
        await send_batch(cur, steps, bound, mariadb, commit=last)
        del steps  # sent: its text goes before the next statement's is made
    return {row.player_id for row in rows if stored.get(row.player_id) != row.epoch}


def _save_batches(
    accepted: Sequence[SaveRow], now: int, codec: int
) -> Iterator[tuple[list[tuple[str, Sequence[object]]], bool]]:
    """The writes of a save, as batches of statements sent one round trip
    each, the COMMIT going with the last: the whole states of ``accepted``
    in multi-row statements of at most :data:`STATEMENT_BYTES` of state each
    (one such statement a batch, so that neither a packet nor the building
    of one grows with the batch), then the progress rows. Always at least one
    batch (it may be empty: the COMMIT alone), each with whether it is the
    last. Each is made when the one before has been sent: a statement's
    states become text (base64, a third more than their bytes, then
    PyMySQL's copies of it) on their way out, not all of a save's at once
    while its first statement travels."""
    states = [(row, row.state) for row in accepted if row.state is not None]
    parts = sql.split_by_size([len(state) for _, state in states], STATEMENT_BYTES)
    for n, part in enumerate(parts):
        params: list[object] = []
        for i in part:
            row, state = states[i]
            params += (
                row.player_id,
                base64.b64encode(state).decode("ascii"),
                codec,
                row.schema_version,
                row.epoch,
                now,
            )
        steps: list[tuple[str, Sequence[object]]] = [(sql.save_statement(len(part)), params)]
        last = n == len(parts) - 1
        if last:
            steps += _progress_steps(accepted, states)
        yield steps, last
        del params, steps
    if not parts:
        yield _progress_steps(accepted, states), True


def _progress_steps(
    accepted: Sequence[SaveRow], states: list[tuple[SaveRow, bytes]]
) -> list[tuple[str, Sequence[object]]]:
    """The last batch's statements after its states: the progress rows the
    states supersede dropped, and the players saved by progress alone."""
    steps: list[tuple[str, Sequence[object]]] = []
    if states:
        # The progress saved before these states is in them now.
        ids = [row.player_id for row, _ in states]
        steps.append((sql.drop_progress_statement(len(ids)), ids))
    moved = [(row.player_id, row.progress) for row in accepted if row.state is None and row.progress is not None]
    if moved:
        params: list[object] = []
        for pid, g in moved:
            params += (pid, g.age_days, g.money, g.low_money)
        steps.append((sql.progress_statement(len(moved)), params))
    return steps


async def _add_ai_usage(conn: Conn, bound: float, day: str, player_id: int, calls: int, cost: float) -> None:
    cur = await conn.cursor()
    await _send(cur, sql.ADD_AI_USAGE, (day, player_id, calls, cost), bound, _is_mariadb(conn))


async def _ai_usage(conn: Conn, bound: float, day: str) -> tuple[dict[int, int], float]:
    cur = await conn.cursor()
    await _send(cur, sql.AI_USAGE, (day,), bound, _is_mariadb(conn))
    rows = await cur.fetchall()
    return {int(r[0]): int(r[1]) for r in rows}, float(sum(r[2] for r in rows))


async def _ai_reserve(
    conn: Conn,
    bound: float,
    days: set[str],
    day: str,
    player_id: int,
    worst: float,
    player_calls: int,
    budget: float,
) -> str | None:
    """The player's call and the day's worst case in one statement, both or
    neither (sql.AI_RESERVE_CALL): one round trip once the player's row and
    the day's exist. When it matches nothing, the player's row is made (the
    player's first call of the day) and the day's too unless ``days`` (the
    days whose row this store has seen) holds it, and the statement is sent
    again, all in a second round trip. A refusal then is told apart by
    reading the player's calls: the player's bound or the budget; nothing
    was counted for either."""
    if player_calls < 1:
        return "player"
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    call = (worst, day, player_id, player_calls, worst, budget)
    await _send(cur, sql.AI_RESERVE_CALL, call, bound, mariadb)
    if cur.rowcount > 0:
        return None
    for _ in range(2):
        # Rows are made with ON DUPLICATE KEY UPDATE: another worker may make
        # the day's at the same time, and an erased player's is gone.
        steps: list[tuple[str, Sequence[object]]] = [(sql.AI_PLAYER_ROW, (day, player_id))]
        if day not in days:
            steps.append((sql.AI_DAY_ROW, (day, day)))
        steps.append((sql.AI_RESERVE_CALL, call))
        done = await send_batch(cur, steps, bound, mariadb)
        if done[-1].rowcount > 0:
            _seen(days, day)
            return None
        (refused,) = await send_batch(cur, [(sql.AI_RESERVE_REFUSED, (day, player_id, day))], bound, mariadb)
        calls, day_rows = refused.rows[0]
        if day_rows:
            _seen(days, day)
            return "player" if calls is not None and int(calls) >= player_calls else "budget"
        days.discard(day)  # the day's row is gone (by hand): made again, once
    return "budget"


def _seen(days: set[str], day: str) -> None:
    """Keep ``day`` as a day whose budget row exists; only the newest few
    are kept (the set lives as long as the store)."""
    if day not in days:
        if len(days) >= 4:
            days.clear()
        days.add(day)


async def _ai_settle(conn: Conn, bound: float, day: str, released: float, costs: Sequence[tuple[int, float]]) -> None:
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    await _send(cur, sql.AI_SETTLE_DAY, (released, sum(cost for _, cost in costs), day), bound, mariadb)
    if costs:
        params: list[object] = []
        for pid, cost in costs:
            params += (day, pid, cost)
        await _send(cur, sql.ai_settle_players_statement(len(costs)), params, bound, mariadb)


async def _ai_day(conn: Conn, bound: float, day: str) -> AiDay:
    cur = await conn.cursor()
    await _send(cur, sql.AI_DAY, (day,), bound, _is_mariadb(conn))
    row = await cur.fetchone()
    if row is None:
        return AiDay()
    return AiDay(float(row[0]), float(row[1]), int(row[2]), None if row[3] is None else float(row[3]))


async def _ai_cache_get(conn: Conn, bound: float, key: bytes, now: float) -> tuple[str, float] | None:
    cur = await conn.cursor()
    await _send(cur, sql.AI_CACHE_GET, (key, now), bound, _is_mariadb(conn))
    row = await cur.fetchone()
    return None if row is None else (str(row[0]), float(row[1]))


async def _ai_cache_put(conn: Conn, bound: float, entries: Sequence[tuple[bytes, str, float]]) -> None:
    params: list[object] = []
    for key, reply, expires_at in entries:
        params += (key, reply, expires_at)
    cur = await conn.cursor()
    await _send(cur, sql.ai_cache_put_statement(len(entries)), params, bound, _is_mariadb(conn))


async def _affected(conn: Conn, bound: float, statement: str, args: Sequence[object]) -> int:
    cur = await conn.cursor()
    await _send(cur, statement, args, bound, _is_mariadb(conn))
    return int(cur.rowcount)


# ----------------------------------------------------------------- operators (baolife.admin)

LOGIN_AT = "INSERT INTO logins (player_id, at) VALUES (%s, %s) ON DUPLICATE KEY UPDATE at = VALUES(at)"
FIND_PLAYERS = (
    "SELECT a.id, a.name, a.created_at, l.at FROM accounts a LEFT JOIN logins l ON l.player_id = a.id"
    " WHERE a.id = %s OR a.name LIKE %s ORDER BY a.id LIMIT %s"
)
ACCOUNT_INFO = (
    "SELECT a.id, a.name, a.created_at, l.at FROM accounts a LEFT JOIN logins l ON l.player_id = a.id WHERE a.id = %s"
)
ACCOUNT_LOCK = "SELECT id FROM accounts WHERE id = %s FOR UPDATE"
PLAYER_STATE = (
    "SELECT p.state, p.state_codec, g.age_days, g.money, g.low_money FROM players p"
    " LEFT JOIN player_progress g ON g.player_id = p.id WHERE p.id = %s"
)
IS_ERASED = "SELECT 1 FROM erased WHERE player_id = %s"
GET_BAN = "SELECT reason, until, by_name, at FROM bans WHERE player_id = %s"
SET_BAN = (
    "INSERT INTO bans (player_id, reason, until, by_name, at) VALUES (%s, %s, %s, %s, %s)"
    " ON DUPLICATE KEY UPDATE reason = VALUES(reason), until = VALUES(until),"
    " by_name = VALUES(by_name), at = VALUES(at)"
)
CLEAR_BAN = "DELETE FROM bans WHERE player_id = %s"
MUTE = "INSERT INTO mutes (player_id, by_name, at) VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE player_id = player_id"
UNMUTE = "DELETE FROM mutes WHERE player_id = %s"
MUTED = "SELECT player_id FROM mutes"
GET_NOTICE = "SELECT text, until, by_name, at FROM notices WHERE id = 1"
CLEAR_NOTICE = "DELETE FROM notices WHERE id = 1"
PUT_NOTICE = "INSERT INTO notices (id, text, until, by_name, at) VALUES (1, %s, %s, %s, %s)"
MARK_ERASED = "REPLACE INTO erased (player_id, at) VALUES (%s, %s)"
# What erasing a player deletes (each statement takes the player id), in an
# order the foreign keys allow. A table that gains per-player rows adds its line.
ERASE_STATEMENTS = (
    "DELETE FROM players WHERE id = %s",
    "DELETE FROM accounts WHERE id = %s",
    "DELETE FROM ai_usage WHERE player_id = %s",
    "DELETE FROM bans WHERE player_id = %s",
    "DELETE FROM mutes WHERE player_id = %s",
    "DELETE FROM logins WHERE player_id = %s",
    "DELETE FROM player_owners WHERE player_id = %s",
    "DELETE FROM player_progress WHERE player_id = %s",
)
ADD_AUDIT = (
    "INSERT INTO admin_audit (at, who, role, action, player_id, detail, origin) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
AUDIT_LOG = "SELECT at, who, role, action, player_id, detail, origin FROM admin_audit ORDER BY id DESC LIMIT %s"
AUDIT_LOG_PLAYER = (
    "SELECT at, who, role, action, player_id, detail, origin FROM admin_audit WHERE player_id = %s"
    " ORDER BY id DESC LIMIT %s"
)
PLAYER_AI_USAGE = "SELECT calls, cost FROM ai_usage WHERE day = %s AND player_id = %s"
PLAYER_AI_HISTORY = "SELECT day, calls, cost FROM ai_usage WHERE player_id = %s ORDER BY day"


def _like_prefix(text: str) -> str:
    """A LIKE pattern for names starting with ``text`` (backslash is LIKE's
    escape character by default)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _account(r: Sequence[Any]) -> AccountInfo:
    return AccountInfo(int(r[0]), str(r[1]), int(r[2]), None if r[3] is None else int(r[3]))


async def _rows(conn: Conn, bound: float, statement: str, args: Sequence[object]) -> list[Any]:
    """One statement, autocommitted; its rows."""
    cur = await conn.cursor()
    await _send(cur, statement, args, bound, _is_mariadb(conn))
    return list(await cur.fetchall())


async def _count(conn: Conn, bound: float, statement: str, args: Sequence[object]) -> int:
    """One statement, autocommitted; the rows it changed."""
    cur = await conn.cursor()
    await _send(cur, statement, args, bound, _is_mariadb(conn))
    return int(cur.rowcount)


async def _locked(conn: Conn, bound: float, player_id: int, statements: Sequence[tuple[str, Sequence[object]]]) -> bool:
    """In one transaction: lock the account row, then run ``statements``;
    False (and nothing run) when there is no such account."""
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    await cur.execute("BEGIN")
    await _send(cur, ACCOUNT_LOCK, (player_id,), bound, mariadb)
    if await cur.fetchone() is None:
        await cur.execute("ROLLBACK")
        return False
    for statement, args in statements:
        await _send(cur, statement, args, bound, mariadb)
    await cur.execute("COMMIT")
    return True


async def _put_notice(conn: Conn, bound: float, notice: NoticeRow | None) -> None:
    mariadb = _is_mariadb(conn)
    cur = await conn.cursor()
    await cur.execute("BEGIN")
    await _send(cur, CLEAR_NOTICE, (), bound, mariadb)
    if notice is not None:
        await _send(cur, PUT_NOTICE, (notice.text, notice.until, notice.by, notice.at), bound, mariadb)
    await cur.execute("COMMIT")


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


class MysqlStore(MysqlCluster):
    """The :class:`~baolife.db.store.Store` on MySQL/MariaDB. Made by
    :func:`open_mysql`, which owns the asyncio loop it runs in."""

    kind = "mysql"

    def __init__(self, options: MysqlOptions, loop: asyncio.AbstractEventLoop, pool_size: int) -> None:
        self.options = options
        self._codec = sql.CODECS[options.state_codec]
        # Read (from the package) and digested here, once: not by the first
        # login's read on the loop's thread. A missing one stops the start.
        sql.state_dict(sql.STATE_DICT_ID)
        self._loop: Any = loop
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            pool_size, connect=self._connect, close=_close, usable=_usable, max_idle=options.max_idle
        )
        # The lease's own connection (baolife.cluster.ownership): a renewal
        # queued behind a login storm's and the saves' calls timed out twice
        # in a row at 19,500 players and the worker stopped every session
        # (docs/BENCHMARKS.md, issue 15); the heartbeat does not wait for the
        # work it vouches for.
        self._lease_pool: ConnectionPool[Conn] = ConnectionPool(
            1, connect=self._connect, close=_close, usable=_usable, max_idle=options.max_idle
        )
        self._stats = QueryStats()
        self._closed = False
        # Days whose ai_budget row exists, as seen by ai_reserve.
        self._ai_days: set[str] = set()
        # A login's two calls, sent together with the others waiting when
        # every connection is busy (a reconnect storm): see baolife.db.batcher.
        self._logins: Batcher[bytes, AccountLogin | None] = Batcher(
            self._find_logins, limit=BATCH_KEYS, concurrency=pool_size, name="mysql find_login"
        )
        self._claims: Batcher[int, Claim] = Batcher(
            self._claim_many, limit=BATCH_KEYS, concurrency=pool_size, name="mysql claim"
        )

    async def _connect(self) -> Conn:
        conn: Conn = await self._loop.run_aio_coroutine(_open(self.options))
        return conn

    async def _call(self, what: str, deadline: float, body: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``body(conn, *args)`` on a pooled connection within ``deadline``
        seconds; see the module docstring."""
        return await self._call_on(self._pool, what, deadline, body, *args)

    async def _call_ai(self, what: str, deadline: float, body: Callable[..., Awaitable[T]], *args: Any) -> T:
        """:meth:`_call` for the LLM path (budget reservations and
        settlements, the shared reply cache, usage): it waits for a
        connection behind logins, saves and everything else. With 64 NPC
        workers at 19,500 players their calls, queued on the day's budget
        row, had held all 8 connections and 8,948 logins timed out; they
        may still use every connection but one while nothing else waits
        (docs/BENCHMARKS.md, issue 15)."""
        return await self._call_on(self._pool, what, deadline, body, *args, behind=True)

    async def _call_lease(self, what: str, deadline: float, body: Callable[..., Awaitable[T]], *args: Any) -> T:
        """:meth:`_call` on the lease's own connection, outside the pool."""
        return await self._call_on(self._lease_pool, what, deadline, body, *args)

    async def _call_on(
        self,
        pool: ConnectionPool[Conn],
        what: str,
        deadline: float,
        body: Callable[..., Awaitable[T]],
        *args: Any,
        behind: bool = False,
    ) -> T:
        started = trio.current_time()
        failed = True
        timed_out = False
        try:
            with trio.move_on_after(deadline):
                async with pool.borrow(behind=behind) as conn:
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
            "create_account",
            t,
            _create_account,
            self._bound(t),
            name,
            token_hash,
            now,
            first_state,
            self.worker,
            self._codec,
        )

    async def find_account(self, token_hash: bytes) -> int | None:
        t = self.options.timeout
        return await self._call("find_account", t, _find_account, self._bound(t), token_hash)

    async def find_login(self, token_hash: bytes) -> AccountLogin | None:
        return await self._logins.call(token_hash)

    async def claim(self, player_id: int) -> Claim:
        # Raises PlayerHeld when another live worker owns the player.
        return await self._claims.call(player_id)

    async def _find_logins(self, token_hashes: list[bytes]) -> list[AccountLogin | None]:
        t = self.options.timeout
        return await self._call("find_login", t, _find_logins, self._bound(t), token_hashes)

    async def _claim_many(self, player_ids: list[int]) -> list[Claim | PlayerHeld | StoreCorrupt]:
        t = self.options.timeout
        return await self._call("claim", t, _claim_many, self._bound(t), player_ids, self.worker)

    async def serve_batches(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the batches of logins (:mod:`baolife.db.batcher`) until
        cancelled: :func:`open_mysql` starts this in its nursery."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._logins.serve)
            await nursery.start(self._claims.serve)
            task_status.started()

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        """Save ``rows`` (distinct players) in one transaction: lock them,
        write those whose epoch matches (compressed) in multi-row statements, commit.
        Two round trips (the locks, then the writes with the COMMIT), one
        more per :data:`STATEMENT_BYTES` of states beyond the first.
        Returns the ids refused (another process owns them, or no such row);
        those are never written. Safe to repeat: same rows, same result."""
        if not rows:
            return set()
        # zstd and zlib let go of the GIL: compressing in a worker thread keeps
        # the tick loop running (and uses the other core) while a batch is packed.
        codec = self._codec
        packed = await trio.to_thread.run_sync(_compressed, rows, codec)
        if isinstance(rows, list):
            # The caller's list holds the stored form from here on (see
            # Store.save): its documents, three times the bytes, are let go
            # while the write waits on the database.
            rows[:] = packed
        ordered = sorted(packed, key=lambda r: r.player_id)  # locks are taken in id order
        t = self.options.save_timeout
        return await self._call("save", t, _save, self._bound(t), ordered, int(time.time()), codec)

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        t = self.options.timeout
        await self._call_ai("add_ai_usage", t, _add_ai_usage, self._bound(t), day, player_id, calls, cost)

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        t = self.options.timeout
        return await self._call_ai("ai_usage", t, _ai_usage, self._bound(t), day)

    # ----------------------------------------------------------------- shared AI budget and cache

    async def ai_reserve(self, day: str, player_id: int, worst: float, player_calls: int, budget: float) -> str | None:
        t = self.options.timeout
        return await self._call_ai(
            "ai_reserve", t, _ai_reserve, self._bound(t), self._ai_days, day, player_id, worst, player_calls, budget
        )

    async def ai_settle(self, day: str, released: float, costs: Sequence[tuple[int, float]]) -> None:
        t = self.options.timeout
        await self._call_ai("ai_settle", t, _ai_settle, self._bound(t), day, released, list(costs))

    async def ai_day(self, day: str) -> AiDay:
        t = self.options.timeout
        return await self._call("ai_day", t, _ai_day, self._bound(t), day)

    async def set_ai_day_budget(self, day: str, budget: float | None) -> None:
        t = self.options.timeout
        await self._call("set_ai_day_budget", t, _affected, self._bound(t), sql.AI_SET_DAY_BUDGET, (day, budget, day))

    async def ai_cache_get(self, key: bytes, now: float) -> tuple[str, float] | None:
        t = self.options.timeout
        return await self._call_ai("ai_cache_get", t, _ai_cache_get, self._bound(t), key, now)

    async def ai_cache_put(self, entries: Sequence[tuple[bytes, str, float]]) -> None:
        if entries:
            t = self.options.timeout
            await self._call_ai("ai_cache_put", t, _ai_cache_put, self._bound(t), list(entries))

    async def ai_cache_prune(self, now: float, limit: int) -> int:
        t = self.options.timeout
        return await self._call_ai("ai_cache_prune", t, _affected, self._bound(t), sql.AI_CACHE_PRUNE, (now, limit))

    # ----------------------------------------------------------------- operators (baolife.admin)

    async def _read(self, what: str, statement: str, *args: object) -> list[Any]:
        t = self.options.timeout
        return await self._call(what, t, _rows, self._bound(t), statement, args)

    async def _write(self, what: str, statement: str, *args: object) -> int:
        t = self.options.timeout
        return await self._call(what, t, _count, self._bound(t), statement, args)

    async def _on_account(self, what: str, player_id: int, statements: Sequence[tuple[str, Sequence[object]]]) -> bool:
        t = self.options.timeout
        return await self._call(what, t, _locked, self._bound(t), player_id, statements)

    async def find_players(self, query: str, limit: int) -> list[AccountInfo]:
        by_id = int(query) if query.isdigit() and len(query) < 19 else 0
        rows = await self._read("find_players", FIND_PLAYERS, by_id, _like_prefix(query), limit)
        return [_account(r) for r in rows]

    async def account_info(self, player_id: int) -> AccountInfo | None:
        rows = await self._read("account_info", ACCOUNT_INFO, player_id)
        return _account(rows[0]) if rows else None

    async def player_state(self, player_id: int) -> Saved | None:
        rows = await self._read("player_state", PLAYER_STATE, player_id)
        if not rows or rows[0][0] is None:
            return None
        state, codec, age_days, money, low_money = rows[0]
        try:
            document = sql.decode_state(bytes(state), int(codec))
        except ValueError as exc:
            raise StoreCorrupt(f"player {player_id}: {exc}") from None
        return Saved(document, None if age_days is None else Progress(int(age_days), int(money), int(low_money)))

    async def is_erased(self, player_id: int) -> bool:
        return bool(await self._read("is_erased", IS_ERASED, player_id))

    async def get_ban(self, player_id: int) -> Ban | None:
        rows = await self._read("get_ban", GET_BAN, player_id)
        if not rows:
            return None
        r = rows[0]
        return Ban(str(r[0]), None if r[1] is None else int(r[1]), str(r[2]), int(r[3]))

    async def set_ban(self, player_id: int, ban: Ban) -> bool:
        args = (player_id, ban.reason, ban.until, ban.by, ban.at)
        return await self._on_account("set_ban", player_id, [(SET_BAN, args)])

    async def clear_ban(self, player_id: int) -> bool:
        return await self._write("clear_ban", CLEAR_BAN, player_id) > 0

    async def set_mute(self, player_id: int, muted: bool, by: str, at: int) -> bool:
        step = (MUTE, (player_id, by, at)) if muted else (UNMUTE, (player_id,))
        return await self._on_account("set_mute", player_id, [step])

    async def muted_players(self) -> set[int]:
        return {int(r[0]) for r in await self._read("muted_players", MUTED)}

    async def get_notice(self) -> NoticeRow | None:
        rows = await self._read("get_notice", GET_NOTICE)
        if not rows:
            return None
        r = rows[0]
        return NoticeRow(str(r[0]), int(r[1]), str(r[2]), int(r[3]))

    async def put_notice(self, notice: NoticeRow | None) -> None:
        t = self.options.timeout
        await self._call("put_notice", t, _put_notice, self._bound(t), notice)

    async def erase_player(self, player_id: int, at: int) -> bool:
        steps: list[tuple[str, Sequence[object]]] = [(statement, (player_id,)) for statement in ERASE_STATEMENTS]
        steps.append((MARK_ERASED, (player_id, at)))
        return await self._on_account("erase_player", player_id, steps)

    async def add_audit(self, entry: AuditEntry) -> None:
        e = entry
        await self._write("add_audit", ADD_AUDIT, e.at, e.who, e.role, e.action, e.player_id, e.detail, e.origin)

    async def audit_log(self, limit: int, player_id: int | None = None) -> list[AuditEntry]:
        if player_id is None:
            rows = await self._read("audit_log", AUDIT_LOG, limit)
        else:
            rows = await self._read("audit_log", AUDIT_LOG_PLAYER, player_id, limit)
        return [
            AuditEntry(
                int(r[0]), str(r[1]), str(r[2]), str(r[3]), None if r[4] is None else int(r[4]), str(r[5]), str(r[6])
            )
            for r in rows
        ]

    async def player_ai_usage(self, day: str, player_id: int) -> tuple[int, float]:
        rows = await self._read("player_ai_usage", PLAYER_AI_USAGE, day, player_id)
        return (0, 0.0) if not rows else (int(rows[0][0]), float(rows[0][1]))

    async def player_ai_history(self, player_id: int) -> list[tuple[str, int, float]]:
        rows = await self._read("player_ai_history", PLAYER_AI_HISTORY, player_id)
        return [(str(r[0]), int(r[1]), float(r[2])) for r in rows]

    async def ping(self) -> None:
        t = min(self.options.timeout, 2.0)
        await self._call("ping", t, _ping, self._bound(t))

    def statistics(self) -> StoreStatistics:
        pool = self._pool.statistics()
        batchers = (self._logins, self._claims)
        stats = self._stats.report(
            self.kind,
            pool_size=pool.size,
            pool_open=pool.open,
            pool_in_use=pool.in_use,
            # Logins waiting in a batcher wait for a connection too.
            pool_waiting=pool.waiting + sum(b.waiting for b in batchers),
            pool_acquires=pool.borrows,
            pool_wait_seconds=pool.wait_seconds,
        )
        return attrs.evolve(
            stats, batch_calls=sum(b.batches for b in batchers), batch_keys=sum(b.keys for b in batchers)
        )

    async def aclose(self) -> None:
        """Stop lending connections and close the idle ones (saying goodbye to
        the server when it answers within a moment). Idempotent."""
        if self._closed:
            return
        self._closed = True
        idle = self._pool.close() + self._lease_pool.close()
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
                async with trio.open_nursery() as nursery:
                    await nursery.start(store.serve_batches)
                    try:
                        yield store
                    finally:
                        nursery.cancel_scope.cancel()
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
