"""Write-behind saves and login loads over each store (SQLite and MariaDB)."""

from __future__ import annotations

import trio

from baolife.db import open_store
from baolife.db.store import SaveRow, Store, hash_token
from baolife.model import Player, dump_player
from baolife.players import Directory, Saver
from tests.helpers import add_players


def born(pid: int, name: str) -> Player:
    return Player(id=pid, name=name)


async def test_dirty_players_are_saved_in_batches_of_one_store_call(store: Store) -> None:
    with trio.fail_after(60):
        directory = Directory(store, born, capacity=1000)
        saver = Saver(store, directory, interval=5, batch=50)
        pids = await add_players(store, directory, 130)
        for pid in pids:
            entry = directory.get(pid)
            assert entry is not None
            entry.player.money = pid * 10
        directory.mark_dirty(set(pids))
        before = store.statistics().calls
        assert await saver.flush()
        assert store.statistics().calls - before == 3  # 50 + 50 + 30
        assert directory.dirty_count == 0 and saver.rows == 130
        for pid in pids:
            entry = directory.get(pid)
            assert entry is not None
            claim = await store.claim(pid)
            assert claim.state == dump_player(entry.player)


async def test_a_player_taken_by_another_process_is_fenced_not_saved(store_url: str, store: Store) -> None:
    with trio.fail_after(60):
        fenced: list[int] = []
        directory = Directory(store, born, capacity=1000)
        saver = Saver(store, directory, interval=5, batch=100, on_fenced=fenced.append)
        mine, taken = await add_players(store, directory, 2)
        assert await saver.flush()
        async with open_store(store_url) as other:
            claim = await other.claim(taken)
            assert await other.save([SaveRow(taken, b'{"theirs": 1}', 1, claim.epoch)]) == set()
            directory.mark_dirty({mine, taken})
            assert await saver.flush()
            assert fenced == [taken] and saver.fenced == 1
            entry = directory.get(taken)
            assert entry is not None and entry.fenced and not entry.dirty
            directory.mark_dirty({taken})
            assert directory.dirty_count == 0  # never saved from here again
            assert (await other.claim(taken)).state == b'{"theirs": 1}'


async def test_two_concurrent_logins_of_one_player_load_it_once(store: Store) -> None:
    with trio.fail_after(60):
        pid = await store.create_account("Bao", hash_token(f"coalesce-{trio.current_time()}"))
        directory = Directory(store, born, capacity=1000)
        entries = []

        async def login() -> None:
            entries.append(await directory.acquire(pid))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(login)
            nursery.start_soon(login)
        assert entries[0] is entries[1] and entries[0].holds == 2
        stats = directory.statistics()
        assert (stats.loads, stats.coalesced) == (1, 1)
        # One claim, so one epoch bump: 1 at creation, 2 after the login.
        assert entries[0].epoch == 2
        assert (await store.claim(pid)).previous_epoch == 2
