"""The embedded store: SQLite in one file, so ``baolife serve`` runs on a bare machine.

All sqlite3 calls run in the store's own thread, one after another from a
queue, so the trio thread never waits on disk and the connection is used by
one thread only. The thread goes from one call to the next without waiting
for the trio loop: with ``trio.to_thread`` behind a one-slot limiter, the
slot was given back only when the trio loop next ran the caller, so the
connection sat idle through every tick (and a login's three calls waited
for three loop turns each). Saves queue behind every other call (a login
never waits for a batch that was queued after it). sqlite3 errors are
translated into the store's exceptions here.

One piece: one class implementing the Store interface for SQLite, method for
method beside mysql.py, under one threading rule that every method follows;
the cluster's SQL is in cluster.py.
"""

from __future__ import annotations

import itertools
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import outcome
import trio

from .cluster import SqliteCluster, sqlite_adopt, sqlite_take_owner
from .migrations import load_migrations
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

__all__ = ["SqliteStore", "open_sqlite", "sqlite_path"]

T = TypeVar("T")


def sqlite_path(url: str, root: str = ".") -> str:
    """``sqlite:///rel/path`` (relative to ``root``), ``sqlite:////abs/path``
    or ``sqlite:///:memory:``."""
    rest = url.removeprefix("sqlite://")
    if rest.startswith("/"):
        rest = rest[1:]
    if rest == ":memory:":
        return rest
    path = Path(rest)
    return str(path if path.is_absolute() else Path(root) / path)


# A day's AI row starts from the usage already written for the day (as on MySQL).
_AI_DAY_ROW = (
    "INSERT OR IGNORE INTO ai_budget (day, spent) SELECT ?, COALESCE(SUM(cost), 0) FROM ai_usage WHERE day = ?"
)


# Priorities of the store thread's queue: saves after every other call, and
# closing after everything.
_FIRST, _SAVES, _LAST = 0, 1, 2


@attrs.frozen
class _Job:
    """A call queued for the store's thread, and the trio task waiting for it."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    task: trio.lowlevel.Task
    token: trio.lowlevel.TrioToken
    queued: float


class SqliteStore(SqliteCluster):
    """The :class:`~baolife.db.store.Store` on SQLite."""

    kind = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._closed = False
        self._stats = QueryStats()
        self._borrows = 0
        self._wait_seconds = 0.0
        # (priority, order, job); None as the job stops the thread.
        self._jobs: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._busy = False
        self._thread = threading.Thread(target=self._serve, name="sqlite-store", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """The store's thread: run each queued call and hand its outcome back."""
        while True:
            _, _, job = self._jobs.get()
            if job is None:
                self._conn.close()
                return
            self._busy = True
            self._borrows += 1
            self._wait_seconds += time.monotonic() - job.queued
            result = outcome.capture(job.fn, *job.args)
            self._busy = False
            # (Raises RunFinishedError only if the caller's trio run ended,
            # which it cannot while the caller waits for this.)
            job.token.run_sync_soon(trio.lowlevel.reschedule, job.task, result)

    @classmethod
    async def connect(cls, path: str) -> SqliteStore:
        def connect() -> sqlite3.Connection:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
            # Only a new database takes it (an existing one keeps its page
            # size): a grown life's state (10-16 KB) then fits in one page
            # rather than a chain of overflow pages, and a save costs the
            # store's thread about 30 % less CPU (docs/BENCHMARKS.md,
            # scripts/bench_sqlite_pages.py).
            conn.execute("PRAGMA page_size=16384")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn

        try:
            return cls(await trio.to_thread.run_sync(connect))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from exc

    async def _run(self, fn: Callable[..., T], *args: Any, priority: int = _FIRST) -> T:
        """``fn(*args)`` in the store's thread, after the calls queued before it
        with the same or a lower ``priority``. Not cancellable once queued
        (like ``trio.to_thread``): the call runs, and its caller waits for it."""
        if self._closed:
            raise StoreUnavailable("store is closed")
        started = trio.current_time()
        failed = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            job = _Job(fn, args, trio.lowlevel.current_task(), trio.lowlevel.current_trio_token(), time.monotonic())
            self._jobs.put((priority, next(self._order), job))
            # The outcome of the call: its value, or its exception raised here.
            result: T = await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
            failed = False
            return result
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc
        finally:
            self._stats.observe(trio.current_time() - started, failed=failed)

    def statistics(self) -> StoreStatistics:
        return self._stats.report(
            self.kind,
            pool_size=1,
            pool_open=0 if self._closed else 1,
            pool_in_use=int(self._busy),
            pool_waiting=self._jobs.qsize(),
            pool_acquires=self._borrows,
            pool_wait_seconds=self._wait_seconds,
        )

    def _tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # ----------------------------------------------------------------- migrations

    def _applied(self) -> set[int]:
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        return {row[0] for row in self._conn.execute("SELECT version FROM schema_migrations")}

    async def pending_migrations(self) -> list[str]:
        applied = await self._run(self._applied)
        return [m.name for m in load_migrations("sqlite") if m.version not in applied]

    async def migrate(self) -> list[str]:
        def apply() -> list[str]:
            done = []
            applied = self._applied()
            for m in load_migrations("sqlite"):
                if m.version in applied:
                    continue

                def body(conn: sqlite3.Connection, m: Any = m) -> None:
                    for statement in m.statements:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (m.version, m.name, int(time.time())),
                    )

                self._tx(body)
                done.append(m.name)
            return done

        return await self._run(apply)

    # ----------------------------------------------------------------- accounts and players

    async def create_account(self, name: str, token_hash: bytes, first_state: FirstState | None = None) -> int:
        def body(conn: sqlite3.Connection) -> int:
            now = int(time.time())
            cur = conn.execute(
                "INSERT INTO accounts (token_hash, name, created_at) VALUES (?, ?, ?)", (token_hash, name, now)
            )
            pid = cur.lastrowid
            assert pid is not None  # noqa: S101 - sqlite always sets it after INSERT
            state, version = first_state(pid) if first_state is not None else (None, 0)
            conn.execute(
                "INSERT INTO players (id, state, schema_version, epoch, updated_at) VALUES (?, ?, ?, 1, ?)",
                (pid, state, version, now),
            )
            if self.worker is not None:  # the creating worker owns the newborn (baolife.db.cluster)
                sqlite_adopt(conn, pid, self.worker)
            return pid

        return await self._run(self._tx, body)

    async def find_account(self, token_hash: bytes) -> int | None:
        def find() -> int | None:
            row = self._conn.execute("SELECT id FROM accounts WHERE token_hash = ?", (token_hash,)).fetchone()
            return None if row is None else int(row[0])

        return await self._run(find)

    async def find_login(self, token_hash: bytes) -> AccountLogin | None:
        def find() -> AccountLogin | None:
            r = self._conn.execute(
                "SELECT a.id, b.reason, b.until, b.by_name, b.at FROM accounts a"
                " LEFT JOIN bans b ON b.player_id = a.id WHERE a.token_hash = ?",
                (token_hash,),
            ).fetchone()
            if r is None:
                return None
            ban = None if r[1] is None else Ban(r[1], None if r[2] is None else int(r[2]), r[3], int(r[4]))
            return AccountLogin(int(r[0]), ban)

        return await self._run(find)

    async def claim(self, player_id: int) -> Claim:
        def body(conn: sqlite3.Connection) -> Claim:
            row = conn.execute(
                "SELECT a.name, p.state, p.epoch, g.age_days, g.money, g.low_money"
                " FROM accounts a JOIN players p ON p.id = a.id"
                " LEFT JOIN player_progress g ON g.player_id = p.id WHERE a.id = ?",
                (player_id,),
            ).fetchone()
            if row is None:
                raise StoreCorrupt(f"player {player_id} has an account but no player row")
            conn.execute("UPDATE players SET epoch = epoch + 1 WHERE id = ?", (player_id,))
            if self.worker is not None:
                held = sqlite_take_owner(conn, player_id, self.worker)
                if held is not None:
                    raise held  # rolls the bump back (_tx)
            # The console's "last login" (baolife.admin): a claim is a worker loading the player.
            conn.execute(
                "INSERT INTO logins (player_id, at) VALUES (?, ?)"
                " ON CONFLICT (player_id) DO UPDATE SET at = excluded.at",
                (player_id, int(time.time())),
            )
            return Claim(
                player_id=player_id,
                name=row[0],
                state=row[1],
                previous_epoch=row[2],
                epoch=row[2] + 1,
                progress=None if row[3] is None else Progress(row[3], row[4], row[5]),
            )

        return await self._run(self._tx, body)

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        if not rows:
            return set()

        states = [row for row in rows if row.state is not None]
        for row in states:
            if row.stored is not None:
                raise ValueError(f"player {row.player_id}: a state stored with codec {row.stored} by another store")
        moved = [row for row in rows if row.state is None and row.progress is not None]

        def body(conn: sqlite3.Connection) -> set[int]:
            now = int(time.time())
            # One transaction, one executemany per kind of row (the loops run
            # in C). Only when fewer rows changed than were sent are the
            # epochs read back, to name the refused players; the common case
            # costs nothing more.
            written = 0
            if states:
                written += conn.executemany(
                    "UPDATE players SET state = ?, schema_version = ?, updated_at = ? WHERE id = ? AND epoch = ?",
                    [(row.state, row.schema_version, now, row.player_id, row.epoch) for row in states],
                ).rowcount
            if moved:
                written += conn.executemany(
                    "INSERT INTO player_progress (player_id, age_days, money, low_money)"
                    " SELECT id, ?, ?, ? FROM players WHERE id = ? AND epoch = ?"
                    " ON CONFLICT (player_id) DO UPDATE SET age_days = excluded.age_days,"
                    " money = excluded.money, low_money = excluded.low_money",
                    [
                        (g.age_days, g.money, g.low_money, row.player_id, row.epoch)
                        for row in moved
                        if (g := row.progress) is not None
                    ],
                ).rowcount
            refused: set[int] = set()
            if written != len(states) + len(moved):
                wanted = {row.player_id: row.epoch for row in rows}
                stored: dict[int, int] = {}
                ids = list(wanted)
                for start in range(0, len(ids), 500):
                    part = ids[start : start + 500]
                    marks = ",".join("?" * len(part))
                    query = "SELECT id, epoch FROM players WHERE id IN (" + marks + ")"  # noqa: S608 - only ? marks
                    stored.update(conn.execute(query, part).fetchall())
                refused = {pid for pid, epoch in wanted.items() if stored.get(pid) != epoch}
            if states:
                # The progress saved before these states is in them now.
                conn.executemany(
                    "DELETE FROM player_progress WHERE player_id = ?",
                    [(row.player_id,) for row in states if row.player_id not in refused],
                )
            return refused

        return await self._run(self._tx, body, priority=_SAVES)

    # ----------------------------------------------------------------- AI usage

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO ai_usage (day, player_id, calls, cost) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (day, player_id)"
                " DO UPDATE SET calls = calls + excluded.calls, cost = cost + excluded.cost",
                (day, player_id, calls, cost),
            )

        await self._run(self._tx, body)

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        def read() -> tuple[dict[int, int], float]:
            rows = self._conn.execute("SELECT player_id, calls, cost FROM ai_usage WHERE day = ?", (day,)).fetchall()
            return {int(r[0]): int(r[1]) for r in rows}, float(sum(r[2] for r in rows))

        return await self._run(read)

    # ----------------------------------------------------------------- shared AI budget and cache

    async def ai_reserve(self, day: str, player_id: int, worst: float, player_calls: int, budget: float) -> str | None:
        def body(conn: sqlite3.Connection) -> str | None:
            # One transaction on the one connection: both checks are atomic.
            conn.execute("INSERT OR IGNORE INTO ai_usage (day, player_id) VALUES (?, ?)", (day, player_id))
            cur = conn.execute(
                "UPDATE ai_usage SET calls = calls + 1 WHERE day = ? AND player_id = ? AND calls < ?",
                (day, player_id, player_calls),
            )
            if cur.rowcount != 1:
                return "player"
            conn.execute(_AI_DAY_ROW, (day, day))
            cur = conn.execute(
                "UPDATE ai_budget SET reserved = reserved + ?, calls = calls + 1"
                " WHERE day = ? AND spent + reserved + ? <= COALESCE(budget, ?)",
                (worst, day, worst, budget),
            )
            if cur.rowcount != 1:
                conn.execute("UPDATE ai_usage SET calls = calls - 1 WHERE day = ? AND player_id = ?", (day, player_id))
                return "budget"
            return None

        return await self._run(self._tx, body)

    async def ai_settle(self, day: str, released: float, costs: Sequence[tuple[int, float]]) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE ai_budget SET reserved = MAX(0, reserved - ?), spent = spent + ? WHERE day = ?",
                (released, sum(cost for _, cost in costs), day),
            )
            conn.executemany(
                "UPDATE ai_usage SET cost = cost + ? WHERE day = ? AND player_id = ?",
                [(cost, day, pid) for pid, cost in costs],
            )

        await self._run(self._tx, body)

    async def ai_day(self, day: str) -> AiDay:
        def read() -> AiDay:
            row = self._conn.execute(
                "SELECT spent, reserved, calls, budget FROM ai_budget WHERE day = ?", (day,)
            ).fetchone()
            if row is None:
                return AiDay()
            return AiDay(float(row[0]), float(row[1]), int(row[2]), None if row[3] is None else float(row[3]))

        return await self._run(read)

    async def set_ai_day_budget(self, day: str, budget: float | None) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute(_AI_DAY_ROW, (day, day))
            conn.execute("UPDATE ai_budget SET budget = ? WHERE day = ?", (budget, day))

        await self._run(self._tx, body)

    async def ai_cache_get(self, key: bytes, now: float) -> tuple[str, float] | None:
        def read() -> tuple[str, float] | None:
            row = self._conn.execute(
                "SELECT reply, expires_at FROM ai_reply_cache WHERE cache_key = ? AND expires_at > ?", (key, now)
            ).fetchone()
            return None if row is None else (str(row[0]), float(row[1]))

        return await self._run(read)

    async def ai_cache_put(self, entries: Sequence[tuple[bytes, str, float]]) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO ai_reply_cache (cache_key, reply, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (cache_key) DO UPDATE SET reply = excluded.reply, expires_at = excluded.expires_at",
                list(entries),
            )

        if entries:
            await self._run(self._tx, body)

    async def ai_cache_prune(self, now: float, limit: int) -> int:
        def body(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM ai_reply_cache WHERE cache_key IN"
                " (SELECT cache_key FROM ai_reply_cache WHERE expires_at <= ? LIMIT ?)",
                (now, limit),
            )
            return max(0, cur.rowcount)

        return await self._run(self._tx, body)

    # ----------------------------------------------------------------- operators (baolife.admin)

    async def find_players(self, query: str, limit: int) -> list[AccountInfo]:
        pattern = _like_prefix(query)
        by_id = int(query) if query.isdigit() and len(query) < 19 else -1

        def read() -> list[AccountInfo]:
            rows = self._conn.execute(
                "SELECT a.id, a.name, a.created_at, l.at FROM accounts a LEFT JOIN logins l ON l.player_id = a.id"
                " WHERE a.id = ? OR a.name LIKE ? ESCAPE '\\' ORDER BY a.id LIMIT ?",
                (by_id, pattern, limit),
            ).fetchall()
            return [AccountInfo(int(r[0]), r[1], int(r[2]), None if r[3] is None else int(r[3])) for r in rows]

        return await self._run(read)

    async def account_info(self, player_id: int) -> AccountInfo | None:
        def read() -> AccountInfo | None:
            r = self._conn.execute(
                "SELECT a.id, a.name, a.created_at, l.at FROM accounts a LEFT JOIN logins l ON l.player_id = a.id"
                " WHERE a.id = ?",
                (player_id,),
            ).fetchone()
            return None if r is None else AccountInfo(int(r[0]), r[1], int(r[2]), None if r[3] is None else int(r[3]))

        return await self._run(read)

    async def player_state(self, player_id: int) -> Saved | None:
        def read() -> Saved | None:
            row = self._conn.execute(
                "SELECT p.state, g.age_days, g.money, g.low_money FROM players p"
                " LEFT JOIN player_progress g ON g.player_id = p.id WHERE p.id = ?",
                (player_id,),
            ).fetchone()
            if row is None or row[0] is None:
                return None
            return Saved(bytes(row[0]), None if row[1] is None else Progress(row[1], row[2], row[3]))

        return await self._run(read)

    async def is_erased(self, player_id: int) -> bool:
        def read() -> bool:
            return self._conn.execute("SELECT 1 FROM erased WHERE player_id = ?", (player_id,)).fetchone() is not None

        return await self._run(read)

    async def get_ban(self, player_id: int) -> Ban | None:
        def read() -> Ban | None:
            r = self._conn.execute(
                "SELECT reason, until, by_name, at FROM bans WHERE player_id = ?", (player_id,)
            ).fetchone()
            return None if r is None else Ban(r[0], None if r[1] is None else int(r[1]), r[2], int(r[3]))

        return await self._run(read)

    async def set_ban(self, player_id: int, ban: Ban) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (player_id,)).fetchone() is None:
                return False
            conn.execute(
                "INSERT INTO bans (player_id, reason, until, by_name, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (player_id) DO UPDATE SET reason = excluded.reason, until = excluded.until,"
                " by_name = excluded.by_name, at = excluded.at",
                (player_id, ban.reason, ban.until, ban.by, ban.at),
            )
            return True

        return await self._run(self._tx, body)

    async def clear_ban(self, player_id: int) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM bans WHERE player_id = ?", (player_id,)).rowcount > 0

        return await self._run(self._tx, body)

    async def set_mute(self, player_id: int, muted: bool, by: str, at: int) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (player_id,)).fetchone() is None:
                return False
            if muted:
                conn.execute(
                    "INSERT INTO mutes (player_id, by_name, at) VALUES (?, ?, ?) ON CONFLICT (player_id) DO NOTHING",
                    (player_id, by, at),
                )
            else:
                conn.execute("DELETE FROM mutes WHERE player_id = ?", (player_id,))
            return True

        return await self._run(self._tx, body)

    async def muted_players(self) -> set[int]:
        def read() -> set[int]:
            return {int(r[0]) for r in self._conn.execute("SELECT player_id FROM mutes")}

        return await self._run(read)

    async def get_notice(self) -> NoticeRow | None:
        def read() -> NoticeRow | None:
            r = self._conn.execute("SELECT text, until, by_name, at FROM notices WHERE id = 1").fetchone()
            return None if r is None else NoticeRow(r[0], int(r[1]), r[2], int(r[3]))

        return await self._run(read)

    async def put_notice(self, notice: NoticeRow | None) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM notices WHERE id = 1")
            if notice is not None:
                conn.execute(
                    "INSERT INTO notices (id, text, until, by_name, at) VALUES (1, ?, ?, ?, ?)",
                    (notice.text, notice.until, notice.by, notice.at),
                )

        await self._run(self._tx, body)

    async def erase_player(self, player_id: int, at: int) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (player_id,)).fetchone() is None:
                return False
            for statement in ERASE_STATEMENTS:
                conn.execute(statement, (player_id,))
            conn.execute("INSERT OR REPLACE INTO erased (player_id, at) VALUES (?, ?)", (player_id, at))
            return True

        return await self._run(self._tx, body)

    async def add_audit(self, entry: AuditEntry) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO admin_audit (at, who, role, action, player_id, detail, origin)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.at, entry.who, entry.role, entry.action, entry.player_id, entry.detail, entry.origin),
            )

        await self._run(self._tx, body)

    async def audit_log(self, limit: int, player_id: int | None = None) -> list[AuditEntry]:
        def read() -> list[AuditEntry]:
            if player_id is None:
                rows = self._conn.execute(
                    "SELECT at, who, role, action, player_id, detail, origin FROM admin_audit ORDER BY id DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT at, who, role, action, player_id, detail, origin FROM admin_audit"
                    " WHERE player_id = ? ORDER BY id DESC LIMIT ?",
                    (player_id, limit),
                ).fetchall()
            return [AuditEntry(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

        return await self._run(read)

    async def player_ai_usage(self, day: str, player_id: int) -> tuple[int, float]:
        def read() -> tuple[int, float]:
            r = self._conn.execute(
                "SELECT calls, cost FROM ai_usage WHERE day = ? AND player_id = ?", (day, player_id)
            ).fetchone()
            return (0, 0.0) if r is None else (int(r[0]), float(r[1]))

        return await self._run(read)

    async def player_ai_history(self, player_id: int) -> list[tuple[str, int, float]]:
        def read() -> list[tuple[str, int, float]]:
            rows = self._conn.execute(
                "SELECT day, calls, cost FROM ai_usage WHERE player_id = ? ORDER BY day", (player_id,)
            ).fetchall()
            return [(str(r[0]), int(r[1]), float(r[2])) for r in rows]

        return await self._run(read)

    # ----------------------------------------------------------------- health

    async def ping(self) -> None:
        def beat(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE heartbeat SET beat_at = ? WHERE id = 1", (time.time_ns(),))

        await self._run(self._tx, beat)

    async def aclose(self) -> None:
        if self._closed:
            return
        # After every call queued before it (saves too) the thread closes the
        # connection and ends.
        self._closed = True
        self._jobs.put((_LAST, next(self._order), None))
        await trio.to_thread.run_sync(self._thread.join)


# What erasing a player deletes (each statement takes the player id), in an
# order the foreign keys allow. A table that gains per-player rows adds its line.
ERASE_STATEMENTS = (
    "DELETE FROM players WHERE id = ?",
    "DELETE FROM accounts WHERE id = ?",
    "DELETE FROM ai_usage WHERE player_id = ?",
    "DELETE FROM bans WHERE player_id = ?",
    "DELETE FROM mutes WHERE player_id = ?",
    "DELETE FROM logins WHERE player_id = ?",
    "DELETE FROM player_owners WHERE player_id = ?",
    "DELETE FROM player_progress WHERE player_id = ?",
)


def _like_prefix(text: str) -> str:
    """A LIKE pattern for names starting with ``text`` (its ``%``, ``_`` and
    backslash matched as themselves)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@asynccontextmanager
async def open_sqlite(url: str, *, root: str = ".") -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.connect(sqlite_path(url, root))
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
