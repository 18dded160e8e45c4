"""A raw MariaDB connection for tests: reset our tables, read rows behind the
store's back, hold a row lock. Test code only; the server's asyncio code
lives in baolife/db/mysql.py alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomysql
import orjson
import trio
import trio_asyncio

from baolife.db.mysql_dialect import MysqlOptions, decode_state

# The tables the migrations create, children first; the only identifiers
# these helpers ever drop.
DROP_TABLES = (
    "DROP TABLE IF EXISTS players",
    "DROP TABLE IF EXISTS accounts",
    "DROP TABLE IF EXISTS ai_usage",
    "DROP TABLE IF EXISTS ai_budget",
    "DROP TABLE IF EXISTS ai_reply_cache",
    "DROP TABLE IF EXISTS schema_migrations",
    "DROP TABLE IF EXISTS heartbeat",
    "DROP TABLE IF EXISTS bans",
    "DROP TABLE IF EXISTS mutes",
    "DROP TABLE IF EXISTS notices",
    "DROP TABLE IF EXISTS erased",
    "DROP TABLE IF EXISTS logins",
    "DROP TABLE IF EXISTS admin_audit",
    "DROP TABLE IF EXISTS workers",
    "DROP TABLE IF EXISTS player_owners",
    "DROP TABLE IF EXISTS bus_events",
    "DROP TABLE IF EXISTS player_progress",
)


class MysqlAdmin:
    """One autocommit connection of its own (its own asyncio loop)."""

    def __init__(self, loop: Any, conn: Any) -> None:
        self.loop = loop
        self.conn = conn

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[MysqlAdmin]:
        o = MysqlOptions.from_url(url)
        async with trio_asyncio.open_loop() as loop:
            conn = await loop.run_aio_coroutine(
                aiomysql.connect(
                    host=o.host,
                    port=o.port,
                    user=o.user,
                    password=o.password,
                    db=o.database,
                    charset="utf8mb4",
                    autocommit=True,
                    connect_timeout=5,
                    init_command="SET SESSION sql_notes = 0",
                )
            )
            try:
                yield cls(loop, conn)
            finally:
                conn.close()

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (empty for statements without)."""

        async def run() -> list[tuple[Any, ...]]:
            cur = await self.conn.cursor()
            await cur.execute(sql, tuple(args))
            return list(await cur.fetchall() or [])

        with trio.fail_after(30):
            rows: list[tuple[Any, ...]] = await self.loop.run_aio_coroutine(run())
        return rows

    async def reset(self) -> None:
        """Drop every table of ours; other databases and tables are left alone."""
        for statement in DROP_TABLES:
            await self.execute(statement)

    async def player(self, player_id: int) -> tuple[bytes | None, int]:
        """(state, epoch) of a player row, its state decoded, with the progress
        saved since it laid over (as a load sees it: the same bytes a
        ``dump_player`` of the loaded player makes)."""
        rows = await self.execute(
            "SELECT p.state, p.state_codec, p.epoch, g.age_days, g.money, g.low_money FROM players p"
            " LEFT JOIN player_progress g ON g.player_id = p.id WHERE p.id = %s",
            (player_id,),
        )
        assert rows, f"no player row {player_id}"
        state, codec, epoch, age_days, money, low_money = rows[0]
        document = None if state is None else decode_state(bytes(state), codec)
        if document is not None and age_days is not None:
            doc = orjson.loads(document)
            doc["player"].update(age_days=int(age_days), money=int(money), low_money=int(low_money))
            document = orjson.dumps(doc)
        return document, int(epoch)


def reset_database(url: str) -> None:
    """Drop our tables in the database of ``url`` (from sync fixtures, before
    and after a test's own trio run)."""

    async def run() -> None:
        async with MysqlAdmin.open(url) as admin:
            await admin.reset()

    trio.run(run)
