"""Write-behind saves: batches, retry with backoff, fencing."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from baolife.content.schema import Content
from baolife.db.sqlite import open_sqlite
from baolife.model import load_player
from baolife.players import Directory, Saver
from baolife.tick.rules import Rules
from tests.db.flaky import FlakyStore
from tests.helpers import add_players


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[FlakyStore]:
    async with open_sqlite(f"sqlite:///{tmp_path}/s.db") as inner:
        await inner.migrate()
        yield FlakyStore(inner)


async def setup(store: FlakyStore, content: Content, n: int) -> tuple[Directory, list[int]]:
    rules = Rules(content, year_days=365, rng=random.Random(1))
    directory = Directory(store, lambda pid, name: rules.new_life(pid, name, 1), capacity=1000)
    return directory, await add_players(store, directory, n)


async def test_dirty_players_are_saved_in_batches(store: FlakyStore, content: Content) -> None:
    with trio.fail_after(20):
        directory, pids = await setup(store, content, 10)
        saver = Saver(store, directory, interval=1, batch=4)
        for pid in pids:
            directory.get(pid).player.money = pid  # type: ignore[union-attr]
        assert await saver.flush()
        assert store.saves == [4, 4, 2]
        assert directory.dirty_count == 0
        claim = await store.inner.claim(pids[3])
        assert claim.state is not None and load_player(claim.state).money == pids[3]
        assert await saver.flush() and store.saves == [4, 4, 2]  # nothing dirty, nothing written


async def test_a_failed_save_keeps_players_dirty_and_probes_with_one_row_each_second(
    store: FlakyStore, content: Content
) -> None:
    with trio.fail_after(20):
        directory, pids = await setup(store, content, 3)
        saver = Saver(store, directory, interval=5, batch=10)
        store.down = True
        delays = []
        for _ in range(4):
            assert not await saver.flush()
            delays.append(saver.next_delay())
        assert directory.dirty_count == 3 and saver.failing and saver.failures == 4
        # No growing backoff: the store is probed every second however long it is away.
        assert delays == [1, 1, 1, 1]
        assert await saver.flush_all(attempts=2) == 3  # still down: reported, not lost
        store.down = False
        assert await saver.flush_all() == 0
        # The first write after the outage was a probe of one player, then the rest.
        assert store.saves == [1, 2]
        assert not saver.failing and saver.next_delay() == 5


async def test_a_save_fenced_by_another_owner_is_never_applied(store: FlakyStore, content: Content) -> None:
    with trio.fail_after(20):
        directory, (mine, theirs) = await setup(store, content, 2)
        fenced: list[int] = []
        saver = Saver(store, directory, interval=1, batch=10, on_fenced=fenced.append)
        await saver.flush()
        claim = await store.inner.claim(theirs)  # another process takes the player
        directory.get(theirs).player.money = 999_999  # type: ignore[union-attr]
        directory.mark_dirty({mine, theirs})
        assert await saver.flush()
        assert fenced == [theirs] and saver.fenced == 1
        entry = directory.get(theirs)
        assert entry is not None and entry.fenced and not entry.dirty
        after = await store.inner.claim(theirs)
        assert after.state == claim.state  # our stale copy never overwrote theirs
        directory.mark_dirty({theirs})
        assert directory.dirty_count == 0  # fenced players are never saved from here again


async def test_what_a_crash_may_lose_is_timed_from_the_last_flush_that_stored_everything_it_found(
    store: FlakyStore, content: Content, mock_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(20):
        directory, pids = await setup(store, content, 3)
        saver = Saver(store, directory, interval=5, batch=2)
        mock_clock.jump(7)
        assert saver.unsaved_seconds() == 7  # the three new players: nothing flushed yet
        started = trio.current_time()
        assert await saver.flush()
        mock_clock.jump(3)
        assert saver.statistics().saved_through == started and saver.unsaved_seconds() == 3
        # A flush that fails (or is cut off) covers nothing: the age grows on.
        directory.get(pids[0]).player.money = 1  # type: ignore[union-attr]
        directory.mark_dirty({pids[0]})
        store.down = True
        assert not await saver.flush()
        mock_clock.jump(4)
        assert saver.unsaved_seconds() == 7
        store.down = False
        mock_clock.jump(1)
        assert await saver.flush()
        assert saver.unsaved_seconds() == 0
        # With nothing unsaved, a flush that finds nothing covers its own time.
        mock_clock.jump(2)
        assert await saver.flush() and saver.unsaved_seconds() == 0
