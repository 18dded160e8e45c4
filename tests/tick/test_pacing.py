"""Pacing: game days per step from content, fast-forward, and quiet days run in bulk.

Most tests use the tiny pack in tests/data/mini with a pace table put in by
``paced`` (the pack itself has none: one day per step). A year is 12 days, so
the baby stage is days 0-35, the child stage 36-215, adulthood from 216.
"""

from __future__ import annotations

import random
import shutil
import statistics
from pathlib import Path
from typing import Any

import attrs
import pytest

from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.content import ContentError
from baolife.content.schema import Conditions, Content, Hazard, Pace
from baolife.tick.engine import World
from baolife.tick.pacing import death_day, share_between
from tests.tick.harness import Harness

MINI = Path(__file__).parent.parent / "data" / "mini"
YEAR = 12
QUIET = 10**6  # a check day no test life reaches


@pytest.fixture(scope="module")
def mini() -> Content:
    return content_pkg.load(MINI)


def paced(mini: Content, *, baby: int = 4, child: int = 3, adult: int = 2, gap: int = 30, **world: Any) -> Content:
    """The mini pack with a pace table (and other world fields) put in."""
    pace = {
        "baby": Pace(days=baby, check_days=(gap, gap)),
        "child": Pace(days=child, check_days=(gap, gap)),
        "adult": Pace(days=adult, check_days=(gap, gap)),
    }
    world.setdefault("first_check_days", QUIET)
    return attrs.evolve(mini, world=attrs.evolve(mini.world, pace=pace, **world))


def states(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [op for op in ops if op["op"] == "state"]


# --------------------------------------------------------------------------- steps


def test_each_step_runs_the_stages_pace_with_one_state_op(mini: Content) -> None:
    game = Harness(paced(mini, baby=4, child=3))
    player, ops = game.join()
    snap = ops[-1]["snapshot"]
    assert (snap["stage"], snap["speed"], snap["pace"]) == ("baby", 1, 4)
    seen = []
    for _ in range(12):
        ops = game.step()[1]
        # Birthdays and school happen inside steps; still one state op a step, last.
        assert len(states(ops)) == 1 and ops[-1]["op"] == "state"
        seen.append(ops[-1])
    # 4 days a step through the baby years (0-35), then 3 as a child.
    assert [s["age_days"] for s in seen] == [4, 8, 12, 16, 20, 24, 28, 32, 36, 39, 42, 45]
    # The step into childhood told the client the new stage and pace; no other did.
    assert (seen[8]["stage"], seen[8]["pace"]) == ("child", 3)
    assert [i for i, s in enumerate(seen) if "stage" in s or "pace" in s] == [8]
    # Busy days inside steps were run in full: school started at 3 and ends at 4.
    assert player.education == "school"
    while player.age_days < 4 * YEAR:
        game.step()
    assert player.education == "school_done"
    stats = game.world.statistics()
    assert stats.player_days == player.age_days and stats.busy_days < stats.player_days


def test_the_action_list_changes_on_the_day_an_action_comes_of_age(mini: Content) -> None:
    # "vote" from 1.5 years (day 18): the step over day 18 sends the new list.
    vote = attrs.evolve(mini.actions["vote"], when=Conditions(min_age=1.5))
    content = paced(attrs.evolve(mini, actions={**mini.actions, "vote": vote}), baby=5)
    game = Harness(content)
    player, ops = game.join()
    assert "vote" not in ops[-1]["snapshot"]["actions"]
    sent = {}
    while player.age_days < 25:
        for state in states(game.step()[1]):
            if "actions" in state:
                sent[state["age_days"]] = state["actions"]
    assert "vote" in sent[20] and all("vote" not in acts for day, acts in sent.items() if day < 18)


def test_without_a_pace_table_a_step_is_one_day(mini: Content) -> None:
    game = Harness(mini)
    player, ops = game.join()
    assert ops[-1]["snapshot"]["pace"] == 1
    for day in range(1, 6):
        game.step()
        assert player.age_days == day


def test_a_prompt_stops_the_step_and_the_clock_runs_one_day_while_it_waits(mini: Content) -> None:
    # A check on day 5 opens "choose" (timeout 3 days); the step of 10 days stops there.
    game = Harness(paced(mini, baby=10, first_check_days=5), day_ticks=3)
    player, _ = game.join()
    out: list[dict[str, Any]] = []
    while not out:
        out = game.step().get(1, [])
    prompt = next(op for op in out if op["op"] == "prompt")
    assert player.age_days == 5 and states(out)[-1]["pace"] == 1
    closed_at = None
    ages = []
    while closed_at is None:
        ops = game.step().get(1, [])
        if ops:
            ages.append(player.age_days)
        if any(op["op"] == "prompt_closed" for op in ops):
            closed_at = game.tick
            assert states(ops)[-1]["pace"] == 10  # nothing waits any more
    # One day a step while it waited, and it timed out exactly at expires_tick.
    assert ages == [6, 7, 8]
    assert closed_at == prompt["expires_tick"]
    while not game.step().get(1):
        pass
    assert player.age_days == 18


def test_answering_restores_the_pace_at_once(mini: Content) -> None:
    game = Harness(paced(mini, baby=10, first_check_days=5))
    player, _ = game.join()
    while not player.prompts:
        game.step()
    pid = player.prompts[0].id
    ops = game.step((1, wire.Answer(prompt=pid, choice="a", ref=1)))[1]
    assert {"op": "ack", "ref": 1} in ops
    assert any(op.get("pace") == 10 for op in states(ops))
    # The step after the answer ran 10 days, not one.
    assert player.age_days == 15


# --------------------------------------------------------------------------- fast-forward


def test_speed_multiplies_the_pace_up_to_the_cap(mini: Content) -> None:
    game = Harness(paced(mini, baby=4, max_step_days=12))
    player, _ = game.join()
    ops = game.step((1, wire.Speed(x=2, ref="s")))[1]
    assert ops[0] == {"op": "ack", "ref": "s"}
    assert ops[1] == {"op": "state", "speed": 2, "pace": 8}
    assert player.age_days == 8 and player.speed == 2
    ops = game.step((1, wire.Speed(x=5, ref="t")))[1]
    assert ops[1] == {"op": "state", "speed": 5, "pace": 12}  # 20 days, capped at 12
    assert player.age_days == 20
    game.step((1, wire.Speed(x=1)))
    assert player.age_days == 24
    stats = game.world.statistics()
    assert (stats.fast_forward_days, stats.fast_forward_refused) == (4 + 8, 0)


def test_speed_does_not_hurry_a_waiting_prompt(mini: Content) -> None:
    game = Harness(paced(mini, baby=4, first_check_days=5))
    player, _ = game.join()
    while not player.prompts:
        game.step()
    age = player.age_days
    ops = game.step((1, wire.Speed(x=5, ref=1)))[1]
    assert {"op": "state", "speed": 5} in ops
    assert player.age_days == age + 1


def test_speed_is_refused_after_death_and_outside_1_2_5(mini: Content) -> None:
    for bad in ("3", "0", "true", '"5"'):
        with pytest.raises(wire.Rejected) as caught:
            wire.parse(f'{{"type": "speed", "x": {bad}, "id": 7}}')
        assert caught.value.op.code == "bad_request" and "x:" in caught.value.op.message
        assert caught.value.op.ref == 7
    assert wire.parse('{"type": "speed", "x": 5}') == wire.Speed(x=5)
    game = Harness(paced(mini))
    player, _ = game.join()
    game.step((1, wire.Speed(x=2)))
    game.step((1, wire.Act(action="die_now", ref=1)))
    assert not player.alive
    ops = game.step((1, wire.Speed(x=5, ref=2)))[1]
    assert [op["code"] for op in ops if op["op"] == "error"] == ["not_allowed"]
    assert player.speed == 2
    # A new life starts at x1, and its welcome says so.
    ops = game.step((1, wire.NewLife(ref=3)))[1]
    snap = next(op for op in ops if op["op"] == "welcome")["snapshot"]
    assert (snap["speed"], snap["pace"], snap["stage"]) == (1, 4, "baby")
    assert player.speed == 1 and not any("pace" in op for op in states(ops))


def test_the_fast_forward_budget_puts_fast_players_over_it_at_x1(mini: Content) -> None:
    # Each fast player at x5 in the baby stage (4 days a step) costs 16 extra days.
    game = Harness(paced(mini, baby=4), fast_forward_budget=20)
    players = [game.join(pid)[0] for pid in (1, 2, 3)]
    game.step(*[(pid, wire.Speed(x=5)) for pid in (1, 2, 3)])
    assert sorted(p.age_days for p in players) == [4, 4, 20]
    game.step()
    assert sorted(p.age_days for p in players) == [8, 8, 40] or sorted(p.age_days for p in players) == [8, 24, 24]
    stats = game.world.statistics()
    assert stats.fast_forward_days == 32 and stats.fast_forward_refused == 4


# --------------------------------------------------------------------------- bulk skipping


def test_share_between_is_the_sum_of_the_daily_shares(mini: Content) -> None:
    rules = Harness(mini).world.rules
    rng = random.Random(1)
    for _ in range(300):
        yearly, since = rng.randint(0, 10**6), rng.randint(0, 500)
        first = rng.randint(since, since + 900)
        last = first + rng.randint(0, 400)
        daily = sum(rules.day_share(yearly, since, d) for d in range(first + 1, last + 1))
        assert share_between(yearly, since, first, last, YEAR) == daily


@pytest.mark.parametrize("job", ["tester", None])
def test_money_over_quiet_spans_is_exactly_the_day_by_day_money(mini: Content, job: str | None) -> None:
    # An adult with a job (salary and costs), or without one, living on 100
    # until it runs out (costs stop the day money reaches zero).
    # No firing at birthdays: the two paths draw different random numbers.
    content = attrs.evolve(paced(mini, adult=7), jobs={"tester": attrs.evolve(mini.jobs["tester"], fire_rate=0.0)})
    runs = []
    for skip in (True, False):
        game = Harness(content, skip_quiet=skip)
        player, _ = game.join()
        player.age_days, player.next_check, player.money = 20 * YEAR + 5, QUIET, 100
        player.job, player.job_since = job, 20 * YEAR - 3
        trail = []
        for _ in range(40):
            game.step()
            trail.append((player.age_days, player.money))
        runs.append(trail)
        if skip:
            stats = game.world.statistics()
            assert stats.busy_days < stats.player_days / 3  # most days were skipped
    assert runs[0] == runs[1]
    assert runs[0][-1][0] == 20 * YEAR + 5 + 280


def test_death_day_has_the_law_of_one_roll_a_day() -> None:
    rng = random.Random(5)
    chance, days, n = 0.02, 30, 40_000
    draws = [death_day(chance, days, rng) for _ in range(n)]
    died = [d for d in draws if d is not None]
    assert abs(len(died) / n - (1 - (1 - chance) ** days)) < 0.01
    # Conditional on dying in the span, day k has weight (1 - chance)^(k - 1).
    weights = [(1 - chance) ** (k - 1) for k in range(1, days + 1)]
    expected = sum(k * w for k, w in zip(range(1, days + 1), weights, strict=True)) / sum(weights)
    assert abs(statistics.fmean(died) - expected) < 0.3
    assert death_day(0.0, days, rng) is None and death_day(1.0, days, rng) == 1


def test_lives_run_in_bulk_match_lives_run_day_by_day(mini: Content) -> None:
    # Mortal lives (about 30 years of 12 days), random checks, prompts left to time out.
    content = paced(mini, baby=6, child=5, adult=8, gap=20, first_check_days=10)
    hazard = Hazard(base=0.01, growth=0.12, health_scale=0.03, infant=0.0, npc_base=0.0001, npc_growth=0.085)
    content = attrs.evolve(content, world=attrs.evolve(content.world, hazard=hazard))
    results = {}
    for skip in (True, False):
        game = Harness(content, seed=11, skip_quiet=skip)
        players = [game.join(pid)[0] for pid in range(1, 301)]
        while any(p.alive for p in players):
            game.step()
        results[skip] = (
            [p.age_days / YEAR for p in players],
            [p.money for p in players],
            game.world.statistics(),
        )
    (years_bulk, money_bulk, stats_bulk), (years_daily, money_daily, stats_daily) = results[True], results[False]
    assert_same_law(years_bulk, years_daily)
    assert_same_law(money_bulk, money_daily)
    assert stats_bulk.deaths == stats_daily.deaths == 300
    # Random-event checks and prompts at the same rate per day lived.
    for field in ("checks", "prompts_opened", "events_fired"):
        bulk = getattr(stats_bulk, field) / stats_bulk.player_days
        daily = getattr(stats_daily, field) / stats_daily.player_days
        assert abs(bulk - daily) < 0.1 * daily, field
    assert stats_bulk.busy_days < stats_bulk.player_days / 2
    assert stats_daily.busy_days == stats_daily.player_days


def assert_same_law(a: list[float], b: list[float]) -> None:
    """Means within 4 standard errors of their difference."""
    error = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
    assert abs(statistics.fmean(a) - statistics.fmean(b)) <= 4 * error + 1e-9


# --------------------------------------------------------------------------- content


def _pack(tmp_path: Path, pace: str, extra: str = "") -> Path:
    """A copy of the mini pack with ``pace`` tables and ``extra`` [world] keys."""
    pack = tmp_path / "pack"
    shutil.copytree(MINI, pack)
    world = pack / "world.toml"
    text = world.read_text().replace("[world]\n", f"[world]\n{extra}", 1)
    world.write_text(text.replace("[world.stages]", pace + "\n[world.stages]"))
    return pack


BABY = "[world.pace.baby]\ndays = 5\ncheck_days = [10, 20]\n"
CHILD = "[world.pace.child]\ndays = 5\ncheck_days = [10, 20]\n"


@pytest.mark.parametrize(
    ("pace", "extra", "message"),
    [
        (BABY + CHILD, "", "[world.pace.adult]: missing"),
        (BABY.replace("days = 5", "days = 0"), "", "[world.pace.baby] days must be >= 1"),
        (BABY.replace("[10, 20]", "[30, 20]"), "", "[world.pace.baby] check_days must be [min, max]"),
        (BABY.replace("[10, 20]", "[0, 20]"), "", "[world.pace.baby] check_days must be [min, max]"),
        (BABY.replace("[10, 20]", "[1, 2, 3]"), "", "check_days"),
        (BABY.replace("baby", "elder"), "", "[world.pace.elder]: unknown stage"),
        (BABY, "max_step_days = 4\n", "[world.pace.baby] days must be >= 1 and <= max_step_days (4)"),
        ("", "max_step_days = 0\n", "max_step_days must be >= 1"),
        ("", "first_check_days = -1\n", "first_check_days must not be negative"),
    ],
)
def test_a_bad_pace_table_is_a_content_error_naming_the_field(
    tmp_path: Path, pace: str, extra: str, message: str
) -> None:
    with pytest.raises(ContentError) as caught:
        content_pkg.load(_pack(tmp_path, pace, extra))
    assert message in str(caught.value)
    assert str(caught.value).startswith("world.toml")


# --------------------------------------------------------------------------- the game's own numbers


def test_the_first_choice_comes_within_30_seconds_of_birth(content: Content) -> None:
    # At the defaults a step is one real second; the sim runs one step a tick.
    firsts = []
    for seed in range(40):
        world = World(content, day_ticks=1, year_days=365, rng=random.Random(seed))
        player = world.rules.new_life(1, "Bao", 1)
        world.join(player, 0)
        world.take_output()
        assert world.pace_of(player) == content.world.pace["baby"].days
        for tick in range(1, 31):
            world.advance(tick)
            if any(isinstance(op, wire.PromptOp) for op in world.take_output().get(1, [])):
                firsts.append(tick)
                break
        else:
            raise AssertionError(f"seed {seed}: no prompt in the first 30 steps")
    assert max(firsts) <= 30
