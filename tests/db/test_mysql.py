"""What only the MySQL store has: a pool of connections, cancellation of calls
in flight, server-side bounds, concurrent migrations, the migrate command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trio
import zstandard

from baolife.app import App
from baolife.config import Settings
from baolife.db.cluster import WorkerInfo
from baolife.db.mysql import open_mysql
from baolife.db.mysql_dialect import encode_state
from baolife.db.store import SaveRow, StoreCorrupt, StoreError, StoreUnavailable, hash_token
from tests.db.mysql_admin import MysqlAdmin
from tests.db.tcp_proxy import proxied
from tests.db.test_store import MIGRATIONS

pytestmark = pytest.mark.mysql


async def migrated(url: str, pool_size: int = 4) -> None:
    async with open_mysql(url, pool_size=pool_size) as store:
        await store.migrate()


async def test_a_call_cancelled_mid_result_never_returns_its_connection(mysql_url: str) -> None:
    """The server's reply stops halfway; the caller's cancel scope fires. The
    connection is dropped, and the next call gets a whole, right result."""
    with trio.fail_after(60):
        await migrated(mysql_url)
        async with MysqlAdmin.open(mysql_url) as admin:
            await admin.execute(
                "INSERT INTO ai_usage (day, player_id, calls, cost) SELECT '2025-03-01', seq, 1, 0.5 FROM seq_1_to_3000"
            )
        async with proxied(mysql_url) as proxy, open_mysql(proxy.url(mysql_url), pool_size=1) as store:
            calls, cost = await store.ai_usage("2025-03-01")
            assert len(calls) == 3000
            proxy.stall_replies_after(2000)
            with trio.move_on_after(1.0) as scope:
                await store.ai_usage("2025-03-01")
            assert scope.cancelled_caught
            stats = store._pool.statistics()
            assert (stats.in_use, stats.idle, stats.open, stats.discarded) == (0, 0, 0, 1)
            proxy.restore()
            calls, cost = await store.ai_usage("2025-03-01")
            assert calls == {pid: 1 for pid in range(1, 3001)}
            assert cost == pytest.approx(1500.0)
            assert store._pool.statistics().connects == 2


async def test_a_cancelled_save_is_not_applied_and_its_connection_is_dropped(mysql_url: str) -> None:
    with trio.fail_after(60):
        async with open_mysql(mysql_url, pool_size=2) as store, MysqlAdmin.open(mysql_url) as admin:
            await store.migrate()
            pid = await store.create_account("Bao", hash_token("cancelled-save"))
            epoch = (await store.claim(pid)).epoch
            assert await store.save([SaveRow(pid, b"first", 1, epoch)]) == set()
            # Another session holds the row: our save waits on the lock...
            await admin.execute("BEGIN")
            await admin.execute("SELECT epoch FROM players WHERE id = %s FOR UPDATE", (pid,))
            with trio.move_on_after(0.5) as scope:
                await store.save([SaveRow(pid, b"cancelled", 1, epoch)])
            assert scope.cancelled_caught
            # ...and is cancelled: that connection is closed, not pooled.
            stats = store.statistics()
            assert (stats.pool_in_use, stats.failures) == (0, 1)
            assert store._pool.statistics().discarded == 1
            await admin.execute("COMMIT")
            assert await admin.player(pid) == (b"first", epoch)
            assert await store.save([SaveRow(pid, b"second", 1, epoch)]) == set()
            assert await admin.player(pid) == (b"second", epoch)


async def test_a_save_that_fails_halfway_leaves_no_lock_or_transaction_behind(mysql_url: str) -> None:
    with trio.fail_after(60):
        async with open_mysql(mysql_url, pool_size=1) as store, MysqlAdmin.open(mysql_url) as admin:
            await store.migrate()
            pid = await store.create_account("Bao", hash_token("half-save"))
            epoch = (await store.claim(pid)).epoch
            # The rows get locked, then the INSERT fails (INT out of range).
            with pytest.raises(StoreError, match="Out of range"):
                await store.save([SaveRow(pid, b"bad", 2**40, epoch)])
            # The store closed the failed connection; the server rolls its
            # transaction back as it notices, so the row is free within a
            # bounded wait (a transaction left open on a pooled connection
            # would hold it past the 5 s).
            await admin.execute("SET SESSION innodb_lock_wait_timeout = 5")
            await admin.execute("BEGIN")
            await admin.execute("SELECT epoch FROM players WHERE id = %s FOR UPDATE", (pid,))
            await admin.execute("ROLLBACK")
            assert await store.save([SaveRow(pid, b"good", 1, epoch)]) == set()
            assert await admin.player(pid) == (b"good", epoch)


async def test_stored_states_are_compressed_readable_in_sql_and_checked(mysql_url: str) -> None:
    with trio.fail_after(60):
        async with open_mysql(mysql_url) as store, MysqlAdmin.open(mysql_url) as admin:
            await store.migrate()
            pid = await store.create_account("Bao", hash_token("codec"))
            epoch = (await store.claim(pid)).epoch
            state = b'{"v": 1, "player": {"feed": ["' + b"a long day at school, " * 300 + b'"]}}'
            # By default a state is stored with zstd and the package's
            # dictionary (codec 3) and read back exactly; the list handed in
            # holds the stored form afterwards, in its order (the saver's
            # batches in flight let go of the JSON).
            other = await store.create_account("Mai", hash_token("codec-2"))
            other_epoch = (await store.claim(other)).epoch
            rows = [SaveRow(other, state, 1, other_epoch), SaveRow(pid, state, 1, epoch)]
            assert await store.save(rows) == set()
            assert [row.player_id for row in rows] == [other, pid] and all(row.epoch for row in rows)
            assert all(row.state == encode_state(state) and row.stored == 3 for row in rows)
            # Saved again, the list writes the same states (not compressed twice).
            assert await store.save(rows) == set()
            assert (await store.claim(other)).state == state
            ((stored_bytes, codec),) = await admin.execute(
                "SELECT LENGTH(state), state_codec FROM players WHERE id = %s", (pid,)
            )
            assert codec == 3 and stored_bytes < len(state) / 5
            epoch = (claim := await store.claim(pid)).epoch
            assert claim.state == state
            # A worker told the codec of an older version (a rolling upgrade)
            # writes what that version reads, and reads every codec the
            # others wrote: state_codec=zstd (before the dictionary) zstd
            # frames that name no dictionary; state_codec=zlib (before zstd)
            # what the server's UNCOMPRESS() reads.
            for option, written in (("zstd", 2), ("zlib", 1)):
                async with open_mysql(mysql_url + f"?state_codec={option}") as older:
                    assert (await older.claim(pid)).state == state
                    epoch += 1
                    assert await older.save([SaveRow(pid, state, 1, epoch)]) == set()
                    ((codec, stored, plain),) = await admin.execute(
                        "SELECT state_codec, state, IF(state_codec = 1, UNCOMPRESS(state), NULL)"
                        " FROM players WHERE id = %s",
                        (pid,),
                    )
                    assert codec == written
                    if option == "zstd":
                        assert zstandard.get_frame_parameters(bytes(stored)).dict_id == 0
                    else:
                        assert bytes(plain) == state
                epoch = (claim := await store.claim(pid)).epoch
                assert claim.state == state
            # A state written as plain JSON (codec 0) is read as it is...
            await admin.execute("UPDATE players SET state = %s, state_codec = 0 WHERE id = %s", (b'{"plain": 1}', pid))
            assert (await store.claim(pid)).state == b'{"plain": 1}'
            # ...and one that does not decompress is reported, not handed to the game.
            for codec in (1, 2, 3):
                await admin.execute(
                    "UPDATE players SET state = %s, state_codec = %s WHERE id = %s", (b"\x10\0\0\0garbage!", codec, pid)
                )
                with pytest.raises(StoreCorrupt, match="does not decompress"):
                    await store.claim(pid)


async def test_row_lock_waits_are_bounded_by_the_server(mysql_url: str) -> None:
    """lock_timeout (innodb_lock_wait_timeout) ends a blocked save long before
    the client's own save deadline, as StoreUnavailable: the saver retries."""
    with trio.fail_after(60):
        url = mysql_url + "?lock_timeout=1&save_timeout=20"
        async with open_mysql(url, pool_size=2) as store, MysqlAdmin.open(mysql_url) as admin:
            await store.migrate()
            pid = await store.create_account("Bao", hash_token("lock-wait"))
            epoch = (await store.claim(pid)).epoch
            await admin.execute("BEGIN")
            await admin.execute("SELECT epoch FROM players WHERE id = %s FOR UPDATE", (pid,))
            started = trio.current_time()
            with pytest.raises(StoreUnavailable, match="Lock wait timeout"):
                await store.save([SaveRow(pid, b"blocked", 1, epoch)])
            assert trio.current_time() - started < 5
            await admin.execute("ROLLBACK")
            assert await store.save([SaveRow(pid, b"unblocked", 1, epoch)]) == set()


async def test_the_pool_bounds_connections_and_measures_the_wait(mysql_url: str) -> None:
    """Six logins of one player while its row is locked: two connections
    wait on the lock, four claims wait for a connection (in the claims'
    batcher: one player's claims go one call each); none is lost."""
    with trio.fail_after(60):
        async with open_mysql(mysql_url, pool_size=2) as store, MysqlAdmin.open(mysql_url) as admin:
            await store.migrate()
            pid = await store.create_account("Bao", hash_token("pool-bound"))
            await admin.execute("BEGIN")
            await admin.execute("SELECT epoch FROM players WHERE id = %s FOR UPDATE", (pid,))
            epochs: list[int] = []

            async def login() -> None:
                epochs.append((await store.claim(pid)).epoch)

            async with trio.open_nursery() as nursery:
                for _ in range(6):
                    nursery.start_soon(login)
                for _ in range(100):
                    await trio.sleep(0.02)
                    if store.statistics().pool_waiting == 4:
                        break
                stats = store.statistics()
                assert (stats.pool_open, stats.pool_in_use, stats.pool_waiting) == (2, 2, 4)
                (server_side,) = await admin.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                    " WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
                )
                assert server_side[0] == 2
                await trio.sleep(0.3)
                await admin.execute("COMMIT")
            assert sorted(epochs) == [2, 3, 4, 5, 6, 7]
            stats = store.statistics()
            assert (stats.pool_in_use, stats.pool_waiting) == (0, 0)
            assert (stats.batch_calls, stats.batch_keys) == (6, 6)


async def test_two_processes_migrating_at_once_apply_each_migration_once(mysql_url: str) -> None:
    with trio.fail_after(60):
        results: list[list[str]] = []

        async def migrate() -> None:
            async with open_mysql(mysql_url) as store:
                results.append(await store.migrate())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(migrate)
            nursery.start_soon(migrate)
        assert sorted(results) == [[], MIGRATIONS]


async def test_serve_migrates_a_schema_that_is_behind_unless_told_not_to(mysql_url: str, settings: Settings) -> None:
    with trio.fail_after(60):
        with pytest.raises(StoreError, match="schema is behind"):
            await App(settings.replace(db_url=mysql_url, db_migrate=False)).run()
        async with trio.open_nursery() as nursery:
            app = await nursery.start(App(settings.replace(db_url=mysql_url)).run)
            assert app.store.kind == "mysql"
            assert await app.store.pending_migrations() == []
            app.request_shutdown()


def test_the_migrate_command_applies_pending_migrations_once(mysql_url: str) -> None:
    env = {**os.environ, "BAOLIFE_DB_URL": mysql_url}
    command = [sys.executable, "-m", "baolife", "migrate"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    applied = (
        "applied 7 migration(s): 0001_init, 0002_heartbeat, 0003_admin, 0004_cluster, 0005_ai_shared,"
        " 0006_owner_online, 0007_progress"
    )
    assert (first.returncode, first.stdout.strip()) == (0, applied), first.stderr
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (second.returncode, second.stdout.strip()) == (0, "applied 0 migration(s)"), second.stderr


def test_the_migrate_command_reports_an_unreachable_database_in_one_line() -> None:
    env = {**os.environ, "BAOLIFE_DB_URL": "mysql://root@127.0.0.1:1/nowhere?connect_timeout=1"}
    done = subprocess.run(
        [sys.executable, "-m", "baolife", "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stderr.startswith("baolife: store: mysql migrate: (2003") and done.stderr.count("\n") == 1


async def test_the_llm_paths_calls_never_take_the_last_connection_from_logins(mysql_url: str) -> None:
    """NPC workers' budget calls blocked on the day's row (a busy budget)
    hold all connections but one: a login's claim still gets it. With 64
    workers at 19,500 players they had held all 8 and logins timed out."""
    with trio.fail_after(60):
        async with open_mysql(mysql_url + "?timeout=20", pool_size=4) as store, MysqlAdmin.open(mysql_url) as admin:
            await store.migrate()
            pid = await store.create_account("Bao", hash_token("llm-share"))
            day = "2025-04-01"
            assert await store.ai_reserve(day, 1, 0.01, 100, 10.0) is None  # the day's row exists
            await admin.execute("BEGIN")
            await admin.execute("SELECT * FROM ai_budget WHERE day = %s FOR UPDATE", (day,))
            reserved: list[str | None] = []

            async def reserve(player: int) -> None:
                reserved.append(await store.ai_reserve(day, player, 0.01, 100, 10.0))

            async with trio.open_nursery() as nursery:
                for player in range(2, 8):
                    nursery.start_soon(reserve, player)
                for _ in range(100):
                    await trio.sleep(0.02)
                    if store.statistics().pool_in_use == 3:
                        break
                await trio.sleep(0.2)
                assert store.statistics().pool_in_use == 3  # three of the four, the rest wait behind
                with trio.fail_after(3):
                    assert (await store.claim(pid)).epoch == 2
                await admin.execute("ROLLBACK")
            assert reserved == [None] * 6  # none lost: each waited its turn


async def test_the_lease_is_renewed_on_its_own_connection_while_the_pool_is_taken(mysql_url: str) -> None:
    """A login storm and the saves can hold every pooled connection for
    seconds; the lease's renewal must not queue behind them, or the worker
    stops every session for a database that is merely busy."""
    info = WorkerInfo(id="a", instance="lease-own-conn", store_kind="mysql", bus="db", address="a:1", started_at=0)
    with trio.fail_after(60):
        async with open_mysql(mysql_url, pool_size=1) as store:
            await store.migrate()
            store.worker = "a"
            assert (await store.join_cluster(info, 30)).holder is None
            async with store._pool.borrow():  # every pooled connection lent, for as long as it takes
                with trio.fail_after(3):
                    peers = await store.renew_worker("a", info.instance, 30)
                assert peers is not None and [w.id for w in peers] == ["a"]
                assert store.statistics().pool_in_use == 1
            await store.leave_cluster("a", info.instance)
