"""The directory of loaded players: LRU, holds, dirty tracking, coalesced loads."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from baolife.content.schema import Content
from baolife.db.sqlite import open_sqlite
from baolife.db.store import StoreCorrupt, StoreUnavailable
from baolife.model import Player
from baolife.players import Directory, DirectoryFull, Saver
from baolife.tick.rules import Rules
from tests.db.flaky import FlakyStore
from tests.db.memory_store import MemoryStore
from tests.helpers import add_players


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FlakyStore]:
    async with open_sqlite(f"sqlite:///{tmp_path}/d.db") as inner:
        await inner.migrate()
        yield FlakyStore(inner)


def born(content: Content):  # type: ignore[no-untyped-def]
    rules = Rules(content, year_days=365, rng=random.Random(1))
    return lambda pid, name: rules.new_life(pid, name, 1)


async def test_offline_players_are_evicted_only_after_they_are_saved(store: FlakyStore, content: Content) -> None:
    with trio.fail_after(20):
        directory = Directory(store, born(content), capacity=3)
        saver = Saver(store, directory, interval=1, batch=100)
        pids = await add_players(store, directory, 5)
        for pid in pids:
            directory.get(pid).player.money = pid * 10  # type: ignore[union-attr]
            directory.release(pid)
        assert len(directory) == 5  # over capacity, but everyone is unsaved
        assert await saver.flush()
        assert len(directory) == 3 and directory.evictions == 2
        assert pids[0] not in directory and pids[1] not in directory  # least recently used went first
        entry = await directory.acquire(pids[0])
        assert entry.player.money == pids[0] * 10 and entry.holds == 1


async def test_held_players_stay_and_a_full_directory_refuses_loads(store: FlakyStore, content: Content) -> None:
    with trio.fail_after(20):
        directory = Directory(store, born(content), capacity=2)
        saver = Saver(store, directory, interval=1, batch=100)
        a, b, c = await add_players(store, directory, 3)
        await saver.flush()
        directory.release(c)
        assert a in directory and b in directory and c not in directory
        assert not directory.has_room
        with pytest.raises(DirectoryFull):
            await directory.acquire(c)
        directory.release(a)
        assert directory.has_room
        assert (await directory.acquire(c)).player.id == c


async def test_two_logins_of_one_player_load_it_once(store: FlakyStore, content: Content) -> None:
    with trio.fail_after(20):
        directory = Directory(store, born(content), capacity=10)
        [pid] = await add_players(store, directory, 1)
        directory.release(pid)
        await Saver(store, directory, interval=1, batch=10).flush()
        directory.evict()
        directory.capacity = 0
        directory.evict()
        directory.capacity = 10
        assert pid not in directory
        claims = store.claims
        got: list[Player] = []

        async def login() -> None:
            got.append((await directory.acquire(pid)).player)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(login)
            nursery.start_soon(login)
        assert store.claims == claims + 1
        assert got[0] is got[1] and directory.get(pid).holds == 2  # type: ignore[union-attr]
        assert directory.coalesced == 1


async def test_a_cached_player_is_reused_unless_another_process_took_it(store: FlakyStore, content: Content) -> None:
    with trio.fail_after(20):
        directory = Directory(store, born(content), capacity=10)
        saver = Saver(store, directory, interval=1, batch=10)
        [pid] = await add_players(store, directory, 1)
        player = directory.get(pid).player  # type: ignore[union-attr]
        player.money = 123
        await saver.flush()
        directory.release(pid)
        player.money = 456  # changed in memory since the last save
        directory.mark_dirty({pid})
        again = await directory.acquire(pid)
        assert again.player is player and again.player.money == 456  # nobody else had it: our copy is current
        directory.release(pid)
        await saver.flush()
        await store.inner.claim(pid)  # another process takes the player and (say) plays on
        again = await directory.acquire(pid)
        assert again.player is not player and again.player.money == 456  # read back from the database


async def test_when_the_store_is_down_only_cached_players_can_log_in(store: FlakyStore, content: Content) -> None:
    with trio.fail_after(20):
        directory = Directory(store, born(content), capacity=10)
        a, b = await add_players(store, directory, 2)
        await Saver(store, directory, interval=1, batch=10).flush()
        directory.release(a)
        directory.release(b)
        del directory._entries[b]  # b is no longer in memory
        store.down = True
        assert (await directory.acquire(a)).player.id == a
        with pytest.raises(StoreUnavailable):
            await directory.acquire(b)


async def test_a_saved_life_that_does_not_load_is_the_stores_corrupt_row(content: Content) -> None:
    """One exception tree for callers: a save the model refuses (SaveError)
    comes out of the directory as StoreCorrupt, naming the player."""
    with trio.fail_after(5):
        store = MemoryStore()
        pid = await store.create_account("ana", b"t" * 32)
        store.rows[pid][1] = b'{"v": 999}'
        directory = Directory(store, born(content), capacity=2)
        with pytest.raises(StoreCorrupt, match=f"player {pid}: save schema 999"):
            await directory.acquire(pid)
        assert pid not in directory
