"""The saver's pipelining and failure rules, against an in-memory store (virtual time)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing

from baolife.db.store import SaveRow, StoreUnavailable
from baolife.model import Player, dump_player
from baolife.players import Directory, Saver
from baolife.players import saver as saver_module


class SlowStore:
    """Saves take one (virtual) second; the ``fail_on``-th call fails."""

    def __init__(self, fail_on: int = 0) -> None:
        self.fail_on = fail_on
        self.calls = 0
        self.active = 0
        self.most_active = 0
        self.saved: dict[int, bytes] = {}
        self.made_before: list[int] = []  # set by a test: documents made when each save began
        self.made = lambda: 0

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        self.calls += 1
        self.made_before.append(self.made() - len(self.saved))
        call = self.calls
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await trio.sleep(1)
            if call == self.fail_on:
                raise StoreUnavailable("connection lost")
            self.saved.update((row.player_id, row.state) for row in rows)
            return set()
        finally:
            self.active -= 1


def online(store: Any, count: int) -> Directory:
    directory = Directory(store, lambda pid, name: Player(id=pid, name=name), capacity=10 * count)
    for pid in range(1, count + 1):
        directory.create(pid, f"P{pid}")
    return directory


async def test_batches_are_written_two_at_a_time(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        store = SlowStore()
        directory = online(store, 1000)
        saver = Saver(store, directory, interval=5, batch=100)  # type: ignore[arg-type]
        started = trio.current_time()
        assert await saver.flush()
        assert (store.calls, store.most_active, len(store.saved)) == (10, 2, 1000)
        assert trio.current_time() - started == 5  # ten one-second writes, two at a time
        assert directory.dirty_count == 0 and not saver.failing


async def test_no_batch_is_serialized_before_it_may_be_written(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While two batches are written, a third's documents are not made yet:
    they would wait in memory for a slot (13 KB a grown life)."""
    made = 0

    def counted(player: Player) -> bytes:
        nonlocal made
        made += 1
        return dump_player(player)

    monkeypatch.setattr(saver_module, "dump_player", counted)
    with trio.fail_after(60):
        store = SlowStore()
        store.made = lambda: made
        directory = online(store, 1000)
        saver = Saver(store, directory, interval=5, batch=100)  # type: ignore[arg-type]
        assert await saver.flush()
        assert len(store.saved) == 1000 == made
        # Documents made and not yet written, as each save began: the batches
        # in flight and no more.
        assert max(store.made_before) <= 2 * 100, store.made_before


async def test_a_failed_batch_stops_the_flush_and_keeps_its_players_dirty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        store = SlowStore(fail_on=3)
        directory = online(store, 1000)
        saver = Saver(store, directory, interval=5, batch=100)  # type: ignore[arg-type]
        assert not await saver.flush()
        # Batches 1, 2 and 4 (already in flight when 3 failed) landed; no more started.
        assert store.calls == 4 and len(store.saved) == 300
        assert directory.dirty_count == 700
        assert saver.failing and saver.failures == 1
        assert saver.next_delay() == saver.retry_every < saver.interval  # probing each second
        store.fail_on = 0
        assert await saver.flush()
        assert directory.dirty_count == 0 and len(store.saved) == 1000 and not saver.failing


class FailsSoonStore:
    """The first save fails after a few scheduling rounds; later ones land."""

    def __init__(self) -> None:
        self.calls = 0
        self.saved: dict[int, bytes | None] = {}

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        self.calls += 1
        if self.calls == 1:
            for _ in range(3):
                await trio.lowlevel.checkpoint()
            raise StoreUnavailable("connection lost")
        self.saved.update((row.player_id, row.state) for row in rows)
        return set()


async def test_a_batch_serialized_while_a_write_failed_is_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # Serialization yields after every player, so the first write fails
    # while the second batch is being serialized: that batch is not sent.
    monkeypatch.setattr(saver_module, "SERIALIZE_SLICE", 0.0)
    with trio.fail_after(10):
        store = FailsSoonStore()
        directory = online(store, 30)
        saver = Saver(store, directory, interval=5, batch=10)  # type: ignore[arg-type]
        assert not await saver.flush()
        assert store.calls == 1 and not store.saved
        assert directory.dirty_count == 30 and saver.failing
        assert await saver.flush()
        assert len(store.saved) == 30 and directory.dirty_count == 0  # a probe of one, then the rest
