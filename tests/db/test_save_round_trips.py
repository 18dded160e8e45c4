"""What a save and a release cost the database, counted on the wire so they
cannot creep back up: with the database 50 ms away (issue 13, "Beyond one
machine") every round trip holds a pooled connection 50 ms longer.

A save batch on MySQL is two round trips, whatever its size and its kind of
rows: the BEGIN with the locking read of the epochs, then every write with
the COMMIT (one more batch per ``STATEMENT_BYTES`` of states beyond the
first). A release and a presence clear are one round trip each (their lock
and their epoch-guarded write in one batch), so a handoff's final save and
release cost three. The round trips are counted by the test proxy
(tests/db/tcp_proxy.py), whatever the driver does.
"""

from __future__ import annotations

import base64
import os

import pytest
import trio

from baolife.db import mysql as mysql_module
from baolife.db.mysql import MysqlStore
from baolife.db.mysql_dialect import (
    CODEC_ZLIB,
    CODEC_ZSTD,
    CODEC_ZSTD_DICT,
    drop_progress_statement,
    encode_state,
    progress_statement,
    save_statement,
)
from baolife.db.store import Progress, SaveRow, StoreError, hash_token
from tests.db.mysql_admin import MysqlAdmin
from tests.db.test_login_round_trips import counted_store, join_as, trips

SAVE_ROUND_TRIPS = 2  # BEGIN + the locks; the writes + COMMIT
RELEASE_ROUND_TRIPS = 1  # BEGIN + the lock + the guarded DELETE + COMMIT
MARK_OFFLINE_ROUND_TRIPS = 1  # BEGIN + the locks + the guarded UPDATE + COMMIT
BORN = b'{"born": true}'


async def born(store: MysqlStore, count: int, tag: str) -> list[int]:
    """``count`` new players (epoch 1, state ``BORN``), in id order."""
    return [await store.create_account(f"P{i}", hash_token(f"{tag}-{i}"), lambda pid: (BORN, 1)) for i in range(count)]


def state_of(pid: int, round_: int) -> bytes:
    return f'{{"player": {pid}, "round": {round_}}}'.encode()


def progress_of(pid: int, round_: int) -> Progress:
    return Progress(age_days=1000 + round_, money=pid * 10 + round_, low_money=-round_)


def test_the_writes_of_a_save_go_in_one_batch_unless_the_states_exceed_a_statement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a database: how the writes are grouped into round trips."""
    monkeypatch.setattr(mysql_module, "STATEMENT_BYTES", 100)
    assert list(mysql_module._save_batches([], 0, CODEC_ZSTD)) == [([], True)]  # the COMMIT alone
    rows = [
        SaveRow(1, b"a" * 60, 1, 1),
        SaveRow(2, None, 1, 1, Progress(1, 2, 3)),
        SaveRow(3, b"b" * 60, 1, 1),
        SaveRow(4, None, 1, 1),  # nothing to write
    ]
    made = mysql_module._save_batches(rows, 7, CODEC_ZLIB)
    # Made one at a time as they are sent: the first statement's text
    # before the second's (which is not made until asked for).
    first, last = next(made)
    assert not last and first[0][1] == [1, base64.b64encode(b"a" * 60).decode(), CODEC_ZLIB, 1, 1, 7]
    assert [(steps, last) for steps, last in made][-1][1]
    batches = [steps for steps, _ in mysql_module._save_batches(rows, 7, CODEC_ZLIB)]
    # Two states of 60 bytes against a budget of 100: one statement each;
    # the progress drop and the progress rows go with the last.
    assert [[text for text, _ in batch] for batch in batches] == [
        [save_statement(1)],
        [save_statement(1), drop_progress_statement(2), progress_statement(1)],
    ]
    assert batches[0][0][1] == [1, base64.b64encode(b"a" * 60).decode(), CODEC_ZLIB, 1, 1, 7]
    assert batches[1][1][1] == [1, 3] and batches[1][2][1] == [2, 1, 2, 3]
    progress_only = mysql_module._save_batches([SaveRow(2, None, 1, 1, Progress(1, 2, 3))], 7, CODEC_ZSTD)
    assert [([text for text, _ in batch], last) for batch, last in progress_only] == [([progress_statement(1)], True)]


@pytest.mark.mysql
@pytest.mark.parametrize("count", [1, 100])
async def test_a_save_batch_is_two_round_trips_whatever_its_rows(mysql_url: str, count: int) -> None:
    with trio.fail_after(120):
        async with counted_store(mysql_url) as (proxy, store):
            pids = await born(store, count, "kinds")

            # Progress rows only.
            rows = [SaveRow(pid, None, 1, 1, progress_of(pid, 1)) for pid in pids]
            n, refused = await trips(proxy, lambda: store.save(rows))
            assert (n, refused) == (SAVE_ROUND_TRIPS, set())
            for pid in pids:
                saved = await store.player_state(pid)
                assert saved is not None and (saved.state, saved.progress) == (BORN, progress_of(pid, 1))

            # Whole states only: each supersedes its player's progress row.
            rows = [SaveRow(pid, state_of(pid, 2), 1, 1) for pid in pids]
            n, refused = await trips(proxy, lambda: store.save(rows))
            assert (n, refused) == (SAVE_ROUND_TRIPS, set())
            for pid in pids:
                saved = await store.player_state(pid)
                assert saved is not None and (saved.state, saved.progress) == (state_of(pid, 2), None)

            # Mixed: states for even ids, progress for odd ones.
            rows = [
                SaveRow(pid, state_of(pid, 3), 1, 1) if pid % 2 == 0 else SaveRow(pid, None, 1, 1, progress_of(pid, 3))
                for pid in pids
            ]
            n, refused = await trips(proxy, lambda: store.save(rows))
            assert (n, refused) == (SAVE_ROUND_TRIPS, set())
            for pid in pids:
                saved = await store.player_state(pid)
                assert saved is not None
                if pid % 2 == 0:
                    assert (saved.state, saved.progress) == (state_of(pid, 3), None)
                else:
                    assert (saved.state, saved.progress) == (state_of(pid, 2), progress_of(pid, 3))


@pytest.mark.mysql
async def test_a_saved_state_travels_in_a_third_more_than_its_stored_bytes(mysql_url: str) -> None:
    # States that compress little, so their stored (zstd) bytes are most of
    # what a save sends: as base64 the statement carries 4/3 of them (as hex
    # it carried twice). Read back as they were.
    states = [base64.b64encode(os.urandom(24_000)) for _ in range(20)]
    stored = sum(len(encode_state(state, CODEC_ZSTD_DICT)) for state in states)
    with trio.fail_after(120):
        async with counted_store(mysql_url) as (proxy, store):
            pids = await born(store, len(states), "wire")
            before = proxy.bytes_up
            refused = await store.save([SaveRow(pid, state, 1, 1) for pid, state in zip(pids, states, strict=True)])
            sent = proxy.bytes_up - before
            assert refused == set()
            assert stored * 4 / 3 < sent < stored * 4 / 3 + 8_000
            for pid, state in zip(pids, states, strict=True):
                saved = await store.player_state(pid)
                assert saved is not None and saved.state == state


@pytest.mark.mysql
async def test_a_stale_epoch_in_a_batch_is_refused_and_changes_nothing_of_that_player(mysql_url: str) -> None:
    with trio.fail_after(120):
        async with counted_store(mysql_url) as (proxy, store), MysqlAdmin.open(mysql_url) as admin:
            pids = await born(store, 100, "stale")
            await store.save([SaveRow(pid, None, 1, 1, progress_of(pid, 1)) for pid in pids])
            # Another process loads two of them: their epoch moves on to 2.
            taken = {pids[10], pids[55]}
            for pid in taken:
                assert (await store.claim(pid)).epoch == 2

            rows = [
                SaveRow(pid, state_of(pid, 2), 1, 1) if pid % 2 else SaveRow(pid, None, 1, 1, progress_of(pid, 2))
                for pid in pids
            ]
            n, refused = await trips(proxy, lambda: store.save(rows))
            assert (n, refused) == (SAVE_ROUND_TRIPS, taken)
            for pid in pids:
                saved = await store.player_state(pid)
                assert saved is not None
                if pid in taken:
                    # Neither the state nor the progress row was touched.
                    assert (saved.state, saved.progress) == (BORN, progress_of(pid, 1))
                    assert await admin.execute("SELECT epoch FROM players WHERE id = %s", (pid,)) == [(2,)]
                elif pid % 2:
                    assert (saved.state, saved.progress) == (state_of(pid, 2), None)
                else:
                    assert (saved.state, saved.progress) == (BORN, progress_of(pid, 2))

            # A batch refused whole still costs its two round trips and writes nothing.
            stale = [SaveRow(pid, state_of(pid, 3), 1, 1) for pid in sorted(taken)] + [SaveRow(10**9, b"x", 1, 1)]
            n, refused = await trips(proxy, lambda: store.save(stale))
            assert (n, refused) == (SAVE_ROUND_TRIPS, {*taken, 10**9})
            for pid in taken:
                saved = await store.player_state(pid)
                assert saved is not None and (saved.state, saved.progress) == (BORN, progress_of(pid, 1))


@pytest.mark.mysql
async def test_states_beyond_one_statement_budget_take_one_round_trip_more_each(
    mysql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Incompressible states of 3,000 bytes against a budget of 4,096: one
    # statement each, so ten states are ten write batches, the last with the
    # progress rows and the COMMIT.
    monkeypatch.setattr(mysql_module, "STATEMENT_BYTES", 4096)
    with trio.fail_after(120):
        async with counted_store(mysql_url) as (proxy, store):
            pids = await born(store, 14, "budget")
            states = {pid: os.urandom(3000) for pid in pids[:10]}
            rows = [SaveRow(pid, states.get(pid), 1, 1, None if pid in states else progress_of(pid, 1)) for pid in pids]
            n, refused = await trips(proxy, lambda: store.save(rows))
            assert (n, refused) == (1 + len(states), set())
            for pid in pids:
                saved = await store.player_state(pid)
                assert saved is not None
                if pid in states:
                    assert (saved.state, saved.progress) == (states[pid], None)
                else:
                    assert (saved.state, saved.progress) == (BORN, progress_of(pid, 1))


@pytest.mark.mysql
async def test_a_write_batch_that_fails_writes_nothing_and_drops_its_connection(mysql_url: str) -> None:
    with trio.fail_after(120):
        async with counted_store(mysql_url) as (proxy, store), MysqlAdmin.open(mysql_url) as admin:
            good, bad = await born(store, 2, "fails")
            # The state statement runs, then the progress upsert fails (BIGINT
            # out of range) before the COMMIT, in the same round trip.
            rows = [SaveRow(good, state_of(good, 1), 1, 1), SaveRow(bad, None, 1, 1, Progress(1, 2**70, 0))]
            before = proxy.round_trips
            with pytest.raises(StoreError, match="Out of range"):
                await store.save(rows)
            assert proxy.round_trips - before == SAVE_ROUND_TRIPS
            assert store._pool.statistics().discarded == 1  # closed, not lent again
            # Its transaction was never committed: the server rolls it back
            # and frees the locks (within a bounded wait) as it notices.
            await admin.execute("SET SESSION innodb_lock_wait_timeout = 5")
            await admin.execute("BEGIN")
            await admin.execute("SELECT epoch FROM players WHERE id IN (%s, %s) FOR UPDATE", (good, bad))
            await admin.execute("ROLLBACK")
            for pid in (good, bad):
                saved = await store.player_state(pid)
                assert saved is not None and (saved.state, saved.progress) == (BORN, None)
            assert await store.save([SaveRow(good, state_of(good, 2), 1, 1)]) == set()
            saved = await store.player_state(good)
            assert saved is not None and saved.state == state_of(good, 2)


@pytest.mark.mysql
async def test_a_release_is_one_round_trip_and_a_handoff_three(mysql_url: str) -> None:
    with trio.fail_after(120):
        async with counted_store(mysql_url) as (proxy, store):
            await join_as(store, "a")
            (pid,) = await born(store, 1, "release")
            assert await store.owner(pid) == "a"

            # Refused: a stale epoch, another worker's row, a missing player.
            for args in [(pid, "a", 2), (pid, "b", 1), (pid, "b", None), (10**9, "a", None)]:
                n, released = await trips(proxy, lambda args=args: store.release(*args))
                assert (n, released) == (RELEASE_ROUND_TRIPS, False), args
                assert await store.owner(pid) == "a"

            # A handoff: the final save of the player, then its release.
            n_save, refused = await trips(proxy, lambda: store.save([SaveRow(pid, state_of(pid, 1), 1, 1)]))
            n_release, released = await trips(proxy, lambda: store.release(pid, "a", 1))
            assert (refused, released) == (set(), True)
            assert (n_save, n_release) == (SAVE_ROUND_TRIPS, RELEASE_ROUND_TRIPS)
            assert await store.owner(pid) is None
            n, released = await trips(proxy, lambda: store.release(pid, "a", 1))
            assert (n, released) == (RELEASE_ROUND_TRIPS, False)  # once

            # Without an epoch: whatever it is now.
            assert (await store.claim(pid)).epoch == 2
            assert await store.owner(pid) == "a"
            n, released = await trips(proxy, lambda: store.release(pid, "a", None))
            assert (n, released) == (RELEASE_ROUND_TRIPS, True)
            assert await store.owner(pid) is None


@pytest.mark.mysql
async def test_clearing_the_online_flags_of_a_hundred_players_is_one_round_trip(mysql_url: str) -> None:
    with trio.fail_after(120):
        async with counted_store(mysql_url) as (proxy, store):
            await join_as(store, "a")
            pids = await born(store, 100, "offline")
            relogged = set(pids[::10])
            for pid in relogged:  # logged in again: their flags are the new sessions'
                assert (await store.claim(pid)).epoch == 2
            n, cleared = await trips(proxy, lambda: store.mark_offline("a", [(pid, 1) for pid in reversed(pids)]))
            assert (n, cleared) == (MARK_OFFLINE_ROUND_TRIPS, 100 - len(relogged))
            for pid in pids:
                assert await store.presence(pid) == ("a", pid in relogged)
            n, cleared = await trips(proxy, lambda: store.mark_offline("b", [(pid, 2) for pid in relogged]))
            assert (n, cleared) == (MARK_OFFLINE_ROUND_TRIPS, 0)  # not b's players
