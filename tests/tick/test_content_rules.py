"""Rules that apply the content: compiled conditions, the registry index,
majors, yearly flag effects, settling, tax, job offers, follow-ups bound to
an NPC, and the death hazard. Synchronous, no event loop."""

from __future__ import annotations

import math
import random

import pytest

from baolife import protocol as wire
from baolife.content.schema import Conditions, Content, Effects, Event, Outcome, ScheduleRef
from baolife.model import MAX_AGE_YEARS, Npc, Player
from baolife.tick.engine import World
from baolife.tick.registry import EventRegistry
from baolife.tick.rules import Rules, Unit, content_conditions, first_day

YEAR = 365


def _world(content: Content, seed: int = 1) -> World:
    return World(content, day_ticks=1, year_days=YEAR, rng=random.Random(seed))


def _random_player(content: Content, rules: Rules, rng: random.Random, pid: int) -> Player:
    """A player in a random state: any age, stats, flags, job, education, major, money and people."""
    p = rules.new_life(pid, f"Test {pid}", 1)
    p.age_days = rng.randint(0, 100 * YEAR)
    for stat in ("health", "happiness", "smarts", "looks"):
        setattr(p.stats, stat, rng.randint(0, 100))
    p.flags = set(rng.sample(sorted(content.flags), rng.randint(0, 6)))
    p.job = rng.choice([None, *sorted(content.jobs)])
    educations = ["none", *sorted(content.levels), *sorted({lv.then for lv in content.levels.values()})]
    p.education = rng.choice(educations)
    p.major = rng.choice(["", *sorted(content.majors)])
    p.money = rng.randint(-20_000, 100_000)
    roles = sorted({r for persona in content.personas.values() for r in persona.roles})
    p.npcs = [
        Npc(id=i, name=f"N{i}", role=rng.choice(roles), closeness=rng.randint(0, 100), persona="")
        for i in range(rng.randint(0, 12))
    ]
    for npc in p.npcs:
        npc.alive = rng.random() < 0.8
    return p


def test_compiled_conditions_agree_with_why_not(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(2))
    rng = random.Random(3)
    conditions = content_conditions(content)
    held = 0
    for pid in range(300):
        p = _random_player(content, rules, rng, pid)
        for cond in conditions:
            allowed = rules.allows(cond, p)
            assert allowed == (rules.why_not(cond, p) == ""), (cond, p)
            held += allowed
    assert 0 < held < 300 * len(conditions)  # both answers were exercised


def test_the_index_never_hides_an_event_that_could_happen(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(4))
    registry = EventRegistry(content)
    rng = random.Random(5)
    looked_at = possible = 0
    for pid in range(400):
        p = _random_player(content, rules, rng, pid)
        candidates = [e.id for e in registry.candidates(p, p.age_days // YEAR)]
        assert len(candidates) == len(set(candidates))
        for event in content.events.values():
            if not event.followup and rules.allows(event.when, p):
                possible += 1
                assert event.id in candidates, (event.id, p)
        looked_at += len(candidates)
    # The index prunes: far fewer candidates than events, and more than the possible ones.
    assert possible <= looked_at < 400 * registry.statistics().indexed / 2


def test_majors_enrol_in_their_level_and_can_turn_you_down(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(6))
    major = next(m for m in content.majors.values() if m.when.min)
    stat, low = next(iter(major.when.min.items()))
    p = rules.new_life(1, "Student Test", 1)
    p.age_days, p.education = 19 * YEAR, "high_school_done"
    setattr(p.stats, stat, low)
    ops: list[wire.Op] = []
    rules.apply(Unit(p, ops), Effects(major=major.id))
    assert (p.education, p.major, p.edu_since) == (major.level, major.id, p.age_days)
    assert rules.allows(Conditions(majors=(major.id,)), p)

    q = rules.new_life(2, "Dreamer Test", 1)
    q.age_days, q.education = 19 * YEAR, "high_school_done"
    setattr(q.stats, stat, low - 1)
    rules.apply(Unit(q, ops), Effects(major=major.id))
    assert (q.education, q.major) == ("high_school_done", "")
    assert "turned you down" in q.feed[-1]

    rules.apply(Unit(p, ops), Effects(major="none"))
    assert p.major == "" and not rules.allows(Conditions(majors=(major.id,)), p)


def test_any_flags_and_closeness_bounds(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(7))
    p = rules.new_life(1, "Cond Test", 1)
    either = Conditions(any_flags=("smoker", "drinker"))
    assert not rules.allows(either, p) and rules.why_not(either, p)
    p.flags.add("drinker")
    assert rules.allows(either, p)
    cold = Conditions(npc_roles=("partner",), max_closeness=30)
    p.npcs.append(Npc(id=99, name="Pat Test", role="partner", closeness=31, persona=""))
    assert not rules.allows(cold, p)
    p.npcs[-1].closeness = 30
    assert rules.allows(cold, p)
    assert rules.bind(Event(id="e", title="t", text="t", when=cold), p)["npc_id"] == "99"


def test_an_event_without_choices_applies_its_effects_then_one_outcome(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(8))
    event = Event(
        id="course",
        title="t",
        text="t",
        effects=Effects(money=10),
        outcomes=(
            Outcome(weight=1, effects=Effects(flags_add=("a",))),
            Outcome(weight=3, effects=Effects(flags_add=("b",))),
        ),
    )
    seen = {"a": 0, "b": 0}
    for _ in range(400):
        p = rules.new_life(1, "Course Test", 1)
        rules.happen(Unit(p, []), event)
        assert p.money == 10
        assert len(p.flags & {"a", "b"}) == 1
        seen[next(iter(p.flags & {"a", "b"}))] += 1
    assert 60 < seen["a"] < 140  # weight 1 of 4


def test_flags_act_at_each_birthday(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(9))
    held = [f.id for f in content.flags.values() if f.yearly.money][:3]
    assert held
    p = rules.new_life(1, "Yearly Test", 1)
    p.npcs.clear()  # no relative can die and change anything
    p.age_days, p.flags = 40 * YEAR, set(held)
    rules.yearly(Unit(p, []))
    assert p.money == sum(content.flags[f].yearly.money for f in held)


def test_happiness_settles_toward_its_baseline(content: Content) -> None:
    settle = next(s for s in content.world.settle if s.stat == "happiness")
    rules = Rules(content, year_days=YEAR, rng=random.Random(10))
    drift = {d.stage: d.happiness for d in content.world.drift}
    for start in (0, settle.toward, 100):
        p = rules.new_life(1, "Settle Test", 1)
        p.npcs.clear()
        p.age_days, p.stats.happiness = 40 * YEAR, start
        rules.yearly(Unit(p, []))
        expected = start + drift.get(rules.stage(p.age_days), 0)
        expected += round((settle.toward - expected) * settle.share)
        assert p.stats.happiness == expected
        assert abs(p.stats.happiness - settle.toward) <= abs(start - settle.toward)


def test_tax_is_paid_with_living_costs(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(11))
    p = rules.new_life(1, "Tax Test", 1)
    p.age_days = 40 * YEAR
    living = content.world.expenses[rules.stage(p.age_days)]
    assert rules.expenses(p) == living
    job = max(content.jobs.values(), key=lambda j: j.salary)
    p.job = job.id
    assert rules.expenses(p) == living + round(job.salary * content.world.tax)


def test_a_job_offer_is_one_you_qualify_for_and_pays_at_least_half_the_best(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(12))
    rng = random.Random(13)
    hired = 0
    for pid in range(300):
        p = _random_player(content, rules, rng, pid)
        p.job = None
        eligible = [j for j in content.jobs.values() if rules.allows(j.when, p)]
        rules.take_job(Unit(p, []), "best")
        if not eligible:
            assert p.job is None and p.feed[-1] == "Nobody would hire you right now."
            continue
        hired += 1
        assert p.job in {j.id for j in eligible}
        assert content.jobs[p.job].salary >= max(j.salary for j in eligible) / 2
    assert hired > 50


def _with_two_siblings(world: World) -> tuple[Player, Npc, Npc]:
    p = world.rules.new_life(1, "Bind Test", 1)
    p.npcs = [
        Npc(id=1, name="Ann Sibling", role="sibling", closeness=50, persona="playful_sibling"),
        Npc(id=2, name="Bob Sibling", role="sibling", closeness=50, persona="playful_sibling"),
    ]
    p.age_days, p.next_check = 30 * YEAR, 10**9  # no random events in the way
    world.join(p, 0)
    return p, p.npcs[0], p.npcs[1]


def _bind(npc: Npc) -> dict[str, str]:
    return {"npc": npc.name, "npc_role": npc.role, "npc_id": str(npc.id)}


def test_a_followup_is_about_the_npc_of_the_event_that_scheduled_it(content: Content) -> None:
    assert "loan_repaid" in content.events and content.events["loan_repaid"].when.npc_roles == ("sibling",)
    world = _world(content)
    p, _ann, bob = _with_two_siblings(world)
    world.rules.apply(Unit(p, []), Effects(schedule=(ScheduleRef(event="loan_repaid", in_days=2),)), _bind(bob))
    assert p.scheduled[0].bind["npc_id"] == "2"
    for tick in (1, 2):
        world.advance(tick)
    assert world.event_counts["loan_repaid"] == 1
    assert any(line.startswith("Bob Sibling paid back") for line in p.feed)


def test_a_followup_that_needs_its_npc_is_dropped_when_that_npc_is_gone(content: Content) -> None:
    world = _world(content)
    p, _ann, bob = _with_two_siblings(world)
    world.rules.apply(Unit(p, []), Effects(schedule=(ScheduleRef(event="loan_repaid", in_days=2),)), _bind(bob))
    bob.alive = False  # Ann is still there, but the loan was Bob's
    for tick in (1, 2, 3):
        world.advance(tick)
    assert world.event_counts["loan_repaid"] == 0 and not p.scheduled
    assert not any("paid back" in line for line in p.feed)


def test_a_funeral_still_happens_for_an_npc_who_died(content: Content) -> None:
    assert not content.events["funeral"].when.npc_roles
    world = _world(content)
    p, ann, _bob = _with_two_siblings(world)
    ann.alive = False
    world.rules.apply(Unit(p, []), Effects(schedule=(ScheduleRef(event="funeral", in_days=1),)), _bind(ann))
    world.take_output()
    world.advance(1)
    prompts = [op for op in world.take_output()[p.id] if isinstance(op, wire.PromptOp)]
    assert len(prompts) == 1 and "Ann Sibling" in prompts[0].text


def test_an_illness_course_stops_when_the_flag_is_gone(content: Content) -> None:
    course = content.events["flu_course"]
    flag = course.when.flags[0]
    world = _world(content)
    p, _, _ = _with_two_siblings(world)
    p.flags.add(flag)
    world.rules.apply(Unit(p, []), Effects(schedule=(ScheduleRef(event=course.id, in_days=3),)))
    p.flags.discard(flag)  # treated by a doctor before it was due
    for tick in range(1, 5):
        world.advance(tick)
    assert world.event_counts[course.id] == 0


@pytest.mark.parametrize("years", [0, 1, 20, 45, 70, 85, 99])
@pytest.mark.parametrize("health", [0, 30, 50, 80, 100])
def test_the_daily_death_chance_follows_the_hazard_at_mid_year(content: Content, years: int, health: int) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(14))
    h = content.world.hazard
    p = rules.new_life(1, "Hazard Test", 1)
    p.age_days, p.stats.health = years * YEAR + 100, health
    annual = h.base * math.exp(h.growth * (years + 0.5) + h.health_scale * (50 - health))
    annual += h.infant if years < 1 else 0.0
    assert rules.daily_death_chance(p) == pytest.approx(min(1.0, annual / YEAR))


def test_event_counts_count_what_happened(content: Content) -> None:
    world = _world(content, seed=15)
    for pid in range(1, 21):
        world.join(world.rules.new_life(pid, f"Count {pid}", 1), 0)
    for tick in range(1, 3 * YEAR):
        world.advance(tick)
        world.take_output()
    assert sum(world.event_counts.values()) == world.statistics().events_fired > 0
    assert set(world.event_counts) <= set(content.events)


def test_checks_kept_by_year_of_age_answer_as_the_whole_conditions(content: Content) -> None:
    # The registry keeps each event's checks per year bucket without the age
    # bounds and stage list that hold on every day of that year (issue 15):
    # for any player of that year they must answer exactly as Rules.allows,
    # on the first and last day of each year and around every bound's day.
    world = _world(content)
    rules, registry = world.rules, world.registry
    rng = random.Random(11)
    days = set()
    for year in range(MAX_AGE_YEARS + 3):
        days.update((year * YEAR, year * YEAR + YEAR // 2, (year + 1) * YEAR - 1))
    for cond in content_conditions(content):
        for years in (cond.min_age, cond.max_age):
            if 0 < years < 200:
                day = first_day(years, YEAR)
                days.update(range(max(0, day - 2), day + 2))
    trimmed = full = 0
    for pid, age in enumerate(sorted(days)):
        p = _random_player(content, rules, rng, pid)
        p.age_days = age
        p.cooldowns.clear()
        lists = registry.item_lists(p, age // YEAR)
        items = [item for keyed in lists for item in keyed]
        assert items == list(registry.items(p, age // YEAR))  # the same items, in the same order
        for event, ident, _weight, checks in items:
            assert ident == event.id
            assert all(check(p) for check in checks) == rules.allows(event.when, p), (event.id, age)
            trimmed += len(checks)
            full += len(rules.checks(event.when))
    assert trimmed < full / 2  # most age and stage checks are gone from the loop


def test_checks_within_keeps_a_bound_that_cuts_the_span(content: Content) -> None:
    rules = Rules(content, year_days=YEAR, rng=random.Random(12))
    cond = Conditions(min_age=10.5, max_age=12, stages=("child",))
    assert len(rules.checks(cond)) == 2
    assert rules.checks_within(cond, 11 * YEAR, 12 * YEAR - 1) == ()  # both hold all year
    assert len(rules.checks_within(cond, 10 * YEAR, 11 * YEAR - 1)) == 1  # the age bound cuts year 10
    assert len(rules.checks_within(cond, 12 * YEAR, None)) == 2  # no end: the stage changes
    # Each variant is compiled once for the content's conditions (bounded by them).
    event = next(e for e in content.events.values() if e.when.stages)
    first = rules.checks_within(event.when, 0, None)
    assert rules.checks_within(event.when, 0, None) is first
