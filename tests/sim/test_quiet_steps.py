"""World.quiet_steps, the simulation's way to run a player's quiet seconds in
one go: the same player as stepping tick by tick, and the same law of death.

Where no death roll is drawn (a hazard of zero, or of one) the two paths
draw the same random numbers, so the players and the dice must end equal,
byte for byte. With a real hazard the span's one roll has the law of one
roll a step, checked against its exact probability.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import attrs
import pytest

from baolife.content.schema import Content
from baolife.model import Player, dump_player
from baolife.sim.bots import NEUTRAL, ActionGuide, Bot
from baolife.tick.engine import World

YEAR = 365


def _with_hazard(content: Content, base: float, infant: float) -> Content:
    hazard = attrs.evolve(content.world.hazard, base=base, infant=infant)
    return attrs.evolve(content, world=attrs.evolve(content.world, hazard=hazard))


def _player(world: World, rng: random.Random, content: Content) -> Player:
    """A player somewhere in life, often with money near zero (where a span must stop)."""
    p = world.rules.new_life(1, "Quinn Test", 1)
    p.age_days = rng.randint(0, 90 * YEAR)
    if p.age_days > 18 * YEAR and rng.random() < 0.7:
        p.job = rng.choice(sorted(content.jobs))
        p.job_since = p.age_days - rng.randint(0, 3000)
    p.money = rng.choice([0, 3, -3, rng.randint(-2000, 2000), rng.randint(0, 200_000)])
    p.low_money = min(p.low_money, p.money)
    p.next_check = p.age_days + rng.randint(1, 200)
    return p


def _pair(content: Content, seed: int) -> tuple[World, World]:
    worlds = []
    for _ in range(2):
        world = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(seed))
        world.join(_player(world, random.Random(seed), content), 0)
        world.take_output()
        worlds.append(world)
    return worlds[0], worlds[1]


@pytest.mark.parametrize("seed", range(12))
def test_quiet_steps_give_the_player_of_steps_one_by_one(content: Content, seed: int) -> None:
    quiet = _with_hazard(content, 0.0, 0.0)
    bulk, single = _pair(quiet, seed)
    asks = random.Random(100 + seed)
    tick = ran = 0
    while tick < 3000 and bulk.players[1].alive:
        n = bulk.quiet_steps(1, asks.randint(2, 40))
        if n == 0:
            tick += 1
            bulk.advance(tick)
            single.advance(tick)
        else:
            ran += n
            for _ in range(n):
                tick += 1
                single.advance(tick)
        ops = bulk.take_output().get(1, [])
        single.take_output()
        if n:
            # One state op for the span, with where it ended.
            assert [op.wire()["op"] for op in ops] == ["state"]
            assert ops[0].wire()["age_days"] == bulk.players[1].age_days
        assert dump_player(bulk.players[1]) == dump_player(single.players[1])
        assert bulk.rng.getstate() == single.rng.getstate()
    assert ran > 500  # most seconds went in spans
    assert bulk.statistics().player_days == single.statistics().player_days


def test_a_span_stops_before_money_crosses_zero(content: Content) -> None:
    world = World(_with_hazard(content, 0.0, 0.0), day_ticks=1, year_days=YEAR, rng=random.Random(1))
    p = world.rules.new_life(1, "Quinn Test", 1)
    # Forty, paid less than a job's costs, a little money left: it runs out within a year.
    job = min(content.jobs.values(), key=lambda j: j.salary)
    p.age_days, p.job, p.job_since, p.money = 40 * YEAR + 1, job.id, 40 * YEAR, 40
    p.next_check = 10**9
    world.join(p, 0)
    world.take_output()
    assert world.rules.pay_delta(p, p.age_days, p.age_days + 200) < -40  # the premise
    before = p.money
    n = world.quiet_steps(1, 100)
    assert n < 100 and p.money >= 0 and (n == 0 or p.money <= before)
    # The crossing step is the engine's ordinary one: it sets the debt flag.
    world.advance(1)
    assert p.money < 0 and world.rules.content.world.money.debt_flag in p.flags


def test_death_in_a_span_ends_it_as_a_step_would(content: Content) -> None:
    certain = _with_hazard(content, 1e9, 1e9)  # a daily chance of 1: death on the first day, no roll
    bulk, single = _pair(certain, 5)
    p = bulk.players[1]
    p.next_check = single.players[1].next_check = p.age_days + 500
    n = bulk.quiet_steps(1, 20)
    single.advance(1)
    assert n == 1 and not p.alive
    assert dump_player(p) == dump_player(single.players[1])
    assert [op.wire() for op in bulk.take_output()[1]] == [op.wire() for op in single.take_output()[1]]


def test_one_roll_for_a_span_has_the_law_of_one_roll_a_step(content: Content) -> None:
    world = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(2))
    steps, trials, deaths, at_step = 10, 3000, 0, [0] * 10
    for pid in range(1, trials + 1):
        p = world.rules.new_life(pid, "Quinn Test", 1)
        p.age_days, p.next_check, p.money = 95 * YEAR + 1, 10**9, 0
        p.stats.health = 30
        world.join(p, 0)
        n = world.quiet_steps(pid, steps)
        if not p.alive:
            deaths += 1
            at_step[n - 1] += 1
        else:
            assert n == steps
        world.leave(pid)
    world.take_output()
    probe = world.rules.new_life(0, "Quinn Test", 1)
    probe.age_days, probe.stats.health = 95 * YEAR + 1, 30
    chance = world.rules.daily_death_chance(probe)
    pace = world.rules.pacing.days("senior", 1)
    expected = trials * (1 - (1 - chance) ** (steps * pace))
    assert abs(deaths - expected) < 4 * math.sqrt(expected) + 1
    # Deaths spread over the steps as a geometric law does (first half a little more).
    per_step = 1 - (1 - chance) ** pace
    first_half = sum(at_step[:5])
    assert abs(first_half - deaths * (1 - (1 - per_step) ** 5) / (1 - (1 - per_step) ** 10)) < 4 * math.sqrt(deaths)


def test_a_world_without_views_plays_the_same_game(content: Content) -> None:
    # The simulation's world writes out no prompt texts; the lives must not notice.
    ends = []
    for views in (True, False):
        world = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(21), views=views)
        guide, dice, taken = ActionGuide(content), random.Random(22), Counter[str]()
        bots = {}
        for pid in range(1, 7):
            world.join(world.rules.new_life(pid, f"Bot {pid}", 1), 0)
            bots[pid] = Bot(pid, NEUTRAL, guide, dice, 0, taken)
        kinds: Counter[str] = Counter()
        for tick in range(1, 2501):
            world.advance(tick)
            for pid, bot in bots.items():
                p = world.players[pid]
                if p.alive and bot.wants_turn(p, tick):
                    bot.on_tick(world, p, tick)
            for ops in world.take_output().values():
                kinds.update(op.op for op in ops)
        ends.append(([dump_player(p) for p in world.players.values()], world.statistics(), kinds))
    (shown, shown_stats, shown_ops), (bare, bare_stats, bare_ops) = ends
    assert shown == bare and shown_stats == bare_stats
    assert shown_ops["prompt"] > 50 and bare_ops["prompt"] == 0
    assert shown_ops["outcome"] == bare_ops["outcome"] > 50
