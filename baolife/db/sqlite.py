"""The embedded store: SQLite in one file, so ``baolife serve`` runs on a bare machine.

All sqlite3 calls run in a worker thread (``trio.to_thread``) through a
one-slot limiter, so the trio thread never waits on disk and the connection
is used by one thread at a time. sqlite3 errors are translated into the
store's exceptions here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from .migrations import load_migrations
from .store import Claim, FirstState, QueryStats, SaveRow, StoreCorrupt, StoreError, StoreStatistics, StoreUnavailable

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


class SqliteStore:
    """The :class:`~baolife.db.store.Store` on SQLite."""

    kind = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._limiter = trio.CapacityLimiter(1)
        self._closed = False
        self._stats = QueryStats()
        self._borrows = 0
        self._wait_seconds = 0.0

    @classmethod
    async def connect(cls, path: str) -> SqliteStore:
        def connect() -> sqlite3.Connection:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            return conn

        try:
            return cls(await trio.to_thread.run_sync(connect))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from exc

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreUnavailable("store is closed")
        started = trio.current_time()
        failed = True
        try:
            # The one connection is the pool of one: hold it while the
            # thread runs (to_thread waits for the thread even when cancelled).
            async with self._limiter:
                self._borrows += 1
                self._wait_seconds += trio.current_time() - started
                result = await trio.to_thread.run_sync(fn, *args)
            failed = False
            return result
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc
        finally:
            self._stats.observe(trio.current_time() - started, failed=failed)

    def statistics(self) -> StoreStatistics:
        limiter = self._limiter.statistics()
        return self._stats.report(
            self.kind,
            pool_size=1,
            pool_open=0 if self._closed else 1,
            pool_in_use=limiter.borrowed_tokens,
            pool_waiting=limiter.tasks_waiting,
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
            return pid

        return await self._run(self._tx, body)

    async def find_account(self, token_hash: bytes) -> int | None:
        def find() -> int | None:
            row = self._conn.execute("SELECT id FROM accounts WHERE token_hash = ?", (token_hash,)).fetchone()
            return None if row is None else int(row[0])

        return await self._run(find)

    async def claim(self, player_id: int) -> Claim:
        def body(conn: sqlite3.Connection) -> Claim:
            row = conn.execute(
                "SELECT a.name, p.state, p.epoch FROM accounts a JOIN players p ON p.id = a.id WHERE a.id = ?",
                (player_id,),
            ).fetchone()
            if row is None:
                raise StoreCorrupt(f"player {player_id} has an account but no player row")
            conn.execute("UPDATE players SET epoch = epoch + 1 WHERE id = ?", (player_id,))
            return Claim(player_id=player_id, name=row[0], state=row[1], previous_epoch=row[2], epoch=row[2] + 1)

        return await self._run(self._tx, body)

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        if not rows:
            return set()

        def body(conn: sqlite3.Connection) -> set[int]:
            now = int(time.time())
            # One transaction, one executemany (the loop runs in C). Only when
            # fewer rows changed than were sent are the epochs read back, to
            # name the refused players; the common case costs nothing more.
            cur = conn.executemany(
                "UPDATE players SET state = ?, schema_version = ?, updated_at = ? WHERE id = ? AND epoch = ?",
                [(row.state, row.schema_version, now, row.player_id, row.epoch) for row in rows],
            )
            if cur.rowcount == len(rows):
                return set()
            wanted = {row.player_id: row.epoch for row in rows}
            stored: dict[int, int] = {}
            ids = list(wanted)
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                query = "SELECT id, epoch FROM players WHERE id IN (" + marks + ")"  # noqa: S608 - only ? marks
                stored.update(conn.execute(query, part).fetchall())
            return {pid for pid, epoch in wanted.items() if stored.get(pid) != epoch}

        return await self._run(self._tx, body)

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

    # ----------------------------------------------------------------- health

    async def ping(self) -> None:
        def beat(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE heartbeat SET beat_at = ? WHERE id = 1", (time.time_ns(),))

        await self._run(self._tx, beat)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await trio.to_thread.run_sync(self._conn.close, limiter=self._limiter)


@asynccontextmanager
async def open_sqlite(url: str, *, root: str = ".") -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.connect(sqlite_path(url, root))
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
