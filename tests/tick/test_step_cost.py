"""The cheap step: shortcuts that must not change what a player sees.

World.advance runs a wholly quiet step inline, without a Unit, and the
action list is recomputed only when its key (ActionList.key) changes. Both
are checked against the plain path on bot-driven lives of the full content.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections import Counter
from typing import Any

from baolife import protocol as wire
from baolife.content.schema import Content
from baolife.model import Npc, dump_player
from baolife.sim.bots import NEUTRAL, ActionGuide, Bot
from baolife.tick.engine import World
from baolife.tick.rules import Unit

YEAR = 365


class PlainWorld(World):
    """Every step through the Unit path (the reference for the inline one)."""

    def advance(self, tick: int) -> None:
        self._advanced_through = tick
        self._fast_forward_left = self.fast_forward_budget
        for pid in self._buckets[tick % self.day_ticks]:
            p = self.players[pid]
            if p.alive:
                self._step(p, tick, self.rules.stage(p.age_days))


class CheckedWorld(World):
    """After each refresh, the list sent is the one every condition gives."""

    refreshes = 0

    def _finish(self, u: Unit) -> None:
        refresh = u.refresh_actions
        super()._finish(u)
        if refresh:
            self.refreshes += 1
            assert self.actions_of(u.p.id) == self.available.compute(u.p)


def run_lives(world: World, content: Content, *, lives: int, ticks: int, seed: int) -> list[list[Any]]:
    """Bot-driven lives for ``ticks`` steps; the ops of each tick, as sent."""
    guide = ActionGuide(content)
    bot_rng = random.Random(seed)
    taken: Counter[str] = Counter()
    bots = {}
    for pid in range(1, lives + 1):
        p = world.rules.new_life(pid, f"Bot {pid}", 1)
        world.join(p, 0)
        bots[pid] = Bot(pid, NEUTRAL, guide, bot_rng, 0, taken)
    world.take_output()
    sent = []
    for tick in range(1, ticks + 1):
        world.advance(tick)
        for pid, bot in bots.items():
            p = world.players[pid]
            if p.alive and bot.wants_turn(p, tick):
                bot.on_tick(world, p, tick)
        out = world.take_output()
        sent.append([(pid, [op.wire() for op in ops]) for pid, ops in sorted(out.items())])
    return sent


def test_quiet_steps_run_inline_send_what_a_unit_sends(content: Content) -> None:
    worlds = [cls(content, day_ticks=1, year_days=YEAR, rng=random.Random(3)) for cls in (World, PlainWorld)]
    fast, plain = (run_lives(w, content, lives=12, ticks=1500, seed=4) for w in worlds)
    assert fast == plain
    # Most steps were quiet ones (a state op with the age and nothing else of note).
    states = sum(1 for tick in fast for _, ops in tick if [op["op"] for op in ops] == ["state"])
    assert states > 0.8 * sum(len(tick) for tick in fast)


def test_action_list_sent_is_what_every_condition_allows(content: Content) -> None:
    world = CheckedWorld(content, day_ticks=1, year_days=YEAR, rng=random.Random(5))
    run_lives(world, content, lives=12, ticks=1500, seed=6)
    assert world.refreshes > 500


def test_equal_action_keys_mean_equal_action_lists(content: Content) -> None:
    # Random player states; whenever two share a key they must share the list.
    world = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(7))
    rng = random.Random(8)
    flags = sorted(content.flags)
    roles = ["mother", "father", "partner", "friend", "child", "pet", "coworker"]
    by_key: dict[Any, list[str]] = {}
    for pid in range(1, 3001):
        p = world.rules.new_life(pid, f"P {pid}", 1)
        p.age_days = rng.randint(0, 95 * YEAR)
        p.flags = set(rng.sample(flags, rng.randint(0, 4)))
        p.job = rng.choice([None, *content.jobs])
        p.education = rng.choice(list(content.levels) + ["none"])
        p.money = rng.randint(-5000, 50_000)
        for stat in ("health", "happiness", "smarts", "looks"):
            setattr(p.stats, stat, rng.randint(0, 100))
        p.npcs = [
            Npc(id=i, name=f"N {i}", role=rng.choice(roles), closeness=rng.randint(0, 100), persona="", age_offset=0)
            for i in range(rng.randint(0, 5))
        ]
        for n in p.npcs:
            n.alive = rng.random() < 0.8
        actions = world.available.compute(p)
        key = world.available.key(p)
        assert by_key.setdefault(key, actions) == actions
        assert world.available.of(p) == actions
    assert len(by_key) > 100  # the keys told many states apart


def test_an_action_key_is_small(content: Content) -> None:
    # The engine keeps one per online player (issue 15): a tuple of ints and
    # ids, no sets (its frozensets made a grown life's key ~1.2 KB).
    world = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(7))
    p = world.rules.new_life(1, "Ada", 1)
    p.age_days, p.job = 40 * YEAR, next(iter(content.jobs))
    p.flags = set(sorted(content.flags)[:6])
    roles = ["mother", "father", "partner", "friend", "child", "coworker"]
    p.npcs = [Npc(id=i, name=f"N {i}", role=role, closeness=60, persona="") for i, role in enumerate(roles)]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        key = world.available.key(p)
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert key == world.available.key(p) and hash(key) == hash(world.available.key(p))
    assert used <= 320, f"{used} bytes"


def test_a_step_sends_one_state_op(content: Content) -> None:
    world = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(9))
    p = world.rules.new_life(1, "Ada", 1)
    p.age_days, p.next_check = 30 * YEAR + 100, 10**9
    world.join(p, 0)
    world.take_output()
    world.advance(1)
    ops = world.take_output()[1]
    assert [type(op) for op in ops] == [wire.State]
    assert ops[0].fields["age_days"] == p.age_days > 30 * YEAR + 100


def test_grown_lives_step_inline_as_a_unit_steps_them(content: Content) -> None:
    # What the inline step keeps per span (stage, pace, chance of death, pay
    # terms: engine._Span) must be what the Unit path reads afresh each step:
    # lives of every age, with jobs, money near zero, fast-forward, a real
    # hazard and commands that change them between steps (issue 15).
    worlds = [
        cls(content, day_ticks=1, year_days=YEAR, rng=random.Random(11), fast_forward_budget=200)
        for cls in (World, PlainWorld)
    ]
    sent: list[list[Any]] = [[], []]
    for world, out in zip(worlds, sent, strict=True):
        rng = random.Random(12)
        for pid in range(1, 301):
            p = world.rules.new_life(pid, f"Grown {pid}", 1)
            p.age_days = rng.randint(0, 95 * YEAR)
            if p.age_days > 18 * YEAR and rng.random() < 0.6:
                p.job = rng.choice(sorted(content.jobs))
                p.job_since = p.age_days - rng.randint(0, 3000)
            p.money = rng.choice([0, 5, -5, rng.randint(-3000, 3000), rng.randint(0, 200_000)])
            p.low_money = min(p.low_money, p.money)
            p.stats.health = rng.randint(5, 100)
            p.speed = rng.choice(wire.SPEEDS)
            p.next_check = p.age_days + rng.randint(1, 200)
            world.join(p, 0)
        world.take_output()
        commands = random.Random(13)
        for tick in range(1, 401):
            world.advance(tick)
            for pid, p in world.players.items():
                if commands.random() < 0.02:
                    cmd: wire.Command = wire.Speed(x=commands.choice(wire.SPEEDS))
                    if p.prompts:
                        cmd = wire.Answer(prompt=p.prompts[0].id, choice=content.events[p.prompts[0].event].default)
                    elif commands.random() < 0.5:
                        cmd = wire.Act(action=commands.choice(["study", "exercise", "see_doctor", "go_out"]))
                    world.apply(pid, cmd, tick)
            taken = world.take_output()
            out.append([(pid, [op.wire() for op in ops]) for pid, ops in sorted(taken.items())])
        out.append([dump_player(p) for _, p in sorted(world.players.items())])
    fast, plain = sent
    assert fast == plain
    assert worlds[0].statistics() == worlds[1].statistics()
    stats = worlds[0].statistics()
    assert stats.busy_days < 0.2 * stats.player_days and stats.deaths > 0 and stats.fast_forward_refused > 0
