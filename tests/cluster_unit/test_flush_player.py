"""Saver.flush_player, the handoff's out-of-turn save (virtual time): it never
lets an older state of a player land after a newer one, whatever the
regular flush is doing, and says whether the latest state is stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio
import trio.testing

from baolife.db.store import SaveRow
from baolife.model import Player, load_player
from baolife.players import Directory, Entry, Saver


class SlowStore:
    """Saves take one (virtual) second each; the last write of a row wins,
    as in a database where the later commit wins."""

    def __init__(self) -> None:
        self.saved: dict[int, bytes] = {}
        self.writes: list[list[int]] = []
        self.refuse: set[int] = set()

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        self.writes.append([row.player_id for row in rows])
        await trio.sleep(1)
        for row in rows:
            if row.player_id not in self.refuse:
                self.saved[row.player_id] = row.state
        return {row.player_id for row in rows} & self.refuse


def directory_of(store: SlowStore, count: int) -> Directory:
    directory = Directory(store, lambda pid, name: Player(id=pid, name=name), capacity=100)  # type: ignore[arg-type]
    for pid in range(1, count + 1):
        directory.create(pid, f"P{pid}")
    return directory


def saver_of(count: int, batch: int, **kwargs: Any) -> tuple[SlowStore, Directory, Saver]:
    """A saver over ``count`` players in a slow store."""
    store = SlowStore()
    directory = directory_of(store, count)
    return store, directory, Saver(store, directory, interval=5, batch=batch, **kwargs)  # type: ignore[arg-type]


async def plays_on(directory: Directory, pid: int, age_days: int) -> Entry:
    """A moment into a write of player ``pid``, the player plays on (the tick loop)."""
    entry = directory.get(pid)
    assert entry is not None
    await trio.sleep(0.1)
    entry.player.age_days = age_days
    directory.mark_dirty({pid})
    return entry


async def test_an_out_of_turn_save_waits_for_the_write_in_flight_and_lands_last(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, directory, saver = saver_of(3, 10)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(saver.flush)  # writes players 1-3 at their first version, for one second
        entry = await plays_on(directory, 2, 77)
        started = trio.current_time()
        assert await saver.flush_player(2)  # ...and is handed over: saved out of turn
        # It waited for the write in flight (which carried an older state), then wrote its own.
        assert trio.current_time() - started >= 1.9
    assert store.writes == [[1, 2, 3], [2]]
    assert load_player(store.saved[2]).age_days == 77
    assert not entry.dirty and directory.dirty_count == 0


async def test_an_out_of_turn_save_says_when_the_player_is_not_ours(autojump_clock: trio.testing.MockClock) -> None:
    fenced: list[int] = []
    store, _directory, saver = saver_of(2, 10, on_fenced=fenced.append)
    assert await saver.flush_player(1)
    assert await saver.flush_player(1)  # nothing unsaved: nothing written
    assert store.writes == [[1]]
    store.refuse.add(2)  # another worker took player 2
    assert not await saver.flush_player(2)
    assert fenced == [2] and saver.fenced == 1
    assert await saver.flush_player(99)  # not loaded here: nothing to save


async def test_a_flush_that_left_a_player_to_a_write_in_flight_does_not_count_as_saving_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, directory, saver = saver_of(2, 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(saver.flush_player, 1)  # player 1's first state, for one second
        entry = await plays_on(directory, 1, 5)
        assert await saver.flush()  # leaves player 1 to that write: its newer state is not stored
    assert store.writes == [[1], [2]] and entry.dirty
    assert saver.unsaved_seconds() >= 1.1  # still timed from before both
    started = trio.current_time()
    assert await saver.flush()
    assert store.writes[-1] == [1] and saver.statistics().saved_through == started
