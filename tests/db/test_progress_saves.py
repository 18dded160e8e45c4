"""Progress saves (issue 15): a player whose steps since the last save only
moved age, money and lowest money is saved as a small progress row, not a
whole state, and comes back from the store exactly as it was played."""

from __future__ import annotations

import random

import trio

from baolife import content as content_pkg
from baolife.db.store import Progress, Store
from baolife.model import Player, dump_player
from baolife.players import Directory, Saver
from baolife.tick.engine import World
from tests.helpers import add_players

CONTENT = content_pkg.load()


def world() -> World:
    return World(CONTENT, day_ticks=1, year_days=365, rng=random.Random(5))


async def test_quiet_steps_save_progress_and_a_reload_plays_on_from_there(store: Store) -> None:
    with trio.fail_after(60):
        w = world()
        directory = Directory(store, lambda pid, name: w.rules.new_life(pid, name, 1), capacity=100)
        saver = Saver(store, directory, interval=5, batch=50)
        (pid,) = await add_players(store, directory, 1)
        entry = directory.get(pid)
        assert entry is not None
        player = entry.player
        player.age_days = 30 * 365  # an adult with a job: quiet days move money
        player.job, player.job_since, player.money = next(iter(CONTENT.jobs)), player.age_days, 500
        assert await saver.flush()
        first = await store.player_state(pid)
        assert first is not None and first.progress is None
        w.join(player, 0)
        kinds = {"quiet": 0, "busy": 0}
        state = first.state
        for tick in range(1, 400):
            w.advance(tick)
            w.take_output()
            changed, progressed = w.take_changed(), w.take_progressed()
            directory.mark_dirty(changed)
            directory.mark_progressed(progressed)
            if not changed and not progressed:
                continue  # not the player's day boundary
            if changed:
                kinds["busy"] += 1
                assert entry.state_dirty
            else:
                kinds["quiet"] += 1
                assert progressed == {pid} and entry.dirty and not entry.state_dirty
            assert await saver.flush() and not entry.dirty
            saved = await store.player_state(pid)
            assert saved is not None
            if changed:
                assert saved.progress is None and saved.state == dump_player(player)
                state = saved.state
            else:
                assert saved.state == state  # the document was not written again
                assert saved.progress == Progress(player.age_days, player.money, player.low_money)
            # Another worker loading the player now gets exactly what was played.
            other = Directory(store, lambda p, n: Player(id=p, name=n), capacity=10)
            assert dump_player((await other.acquire(pid)).player) == dump_player(player)
            entry.epoch = (await store.claim(pid)).epoch  # take it back, as a login here would
            if min(kinds.values()) >= 3:
                break
        assert min(kinds.values()) >= 3, kinds
