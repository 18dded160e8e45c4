"""The shipped content validates and has what issue 3 asks of it. Counts are
derived from the loaded content, never from lists kept in the test."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from baolife.cli import main
from baolife.content.schema import Content, Effects, Event
from baolife.tick.registry import EventRegistry


def _effects(event: Event) -> Iterator[Effects]:
    yield event.effects
    yield from (o.effects for o in event.outcomes)
    for choice in event.choices:
        yield choice.effects
        yield from (o.effects for o in choice.outcomes)


def _all_effects(content: Content) -> Iterator[Effects]:
    for event in content.events.values():
        yield from _effects(event)
    for action in content.actions.values():
        yield action.effects
        yield from (o.effects for o in action.outcomes)
    for flag in content.flags.values():
        yield flag.yearly


def test_at_least_120_life_events_with_2_to_4_choices_and_a_default(content: Content) -> None:
    prompts = [e for e in content.events.values() if not e.followup and e.choices]
    assert len(prompts) >= 120
    for event in prompts:
        assert 2 <= len(event.choices) <= 4, event.id
        assert event.choice(event.default) is not None, event.id


def test_every_stage_has_its_own_events(content: Content) -> None:
    registry = EventRegistry(content)
    per_stage = registry.events_per_stage()
    assert set(per_stage) == {"baby", "child", "teen", "young_adult", "adult", "senior"}
    assert min(per_stage.values()) >= 10, per_stage
    # Events only for one stage exist for each stage (not just all-ages events).
    for stage in content.stage_order:
        assert any(registry.stages_of(e) == [stage] for e in content.events.values() if not e.followup), stage


def test_choices_change_stats_money_flags_people_schedule_and_feed(content: Content) -> None:
    choice_effects = [
        eff
        for event in content.events.values()
        for choice in event.choices
        for eff in (choice.effects, *(o.effects for o in choice.outcomes))
    ]
    assert any(e.health or e.happiness or e.smarts or e.looks for e in choice_effects)
    assert any(e.money or e.salary_share for e in choice_effects)
    assert any(e.flags_add for e in choice_effects) and any(e.flags_remove for e in choice_effects)
    assert any(e.npc_add for e in choice_effects) and any(e.npc for e in choice_effects)
    assert any(e.schedule for e in choice_effects)
    assert sum(1 for e in choice_effects if e.feed) > len(choice_effects) / 2


def test_conditions_use_age_stats_flags_job_education_and_relationships(content: Content) -> None:
    conds = [e.when for e in content.events.values()]
    assert any(c.min_age > 0 or c.max_age < 1000 or c.stages for c in conds)
    assert any(c.min or c.max for c in conds)
    assert any(c.flags for c in conds) and any(c.not_flags for c in conds)
    assert any(c.jobs for c in conds) and any(c.has_job is not None for c in conds)
    assert any(c.education for c in conds)
    assert any(c.npc_roles for c in conds) and any(c.min_closeness or c.max_closeness for c in conds)
    events = content.events.values()
    assert any(e.once for e in events) and any(e.cooldown_days for e in events) and any(e.weight != 1 for e in events)


def test_at_least_15_actions_with_costs_cooldowns_and_conditions(content: Content) -> None:
    actions = list(content.actions.values())
    assert len(actions) >= 15
    assert sum(1 for a in actions if a.cost) >= 5
    assert all(a.cooldown_days > 0 for a in actions)
    assert all(a.when != type(a.when)() for a in actions)


def test_education_path_with_university_majors(content: Content) -> None:
    auto = sorted((lv.auto_age, lv.id) for lv in content.levels.values() if lv.auto_age is not None)
    assert len(auto) >= 2  # school and high school start by themselves
    university = [m for m in content.majors.values() if m.level == "university"]
    assert len(university) >= 4
    for major in university:
        # Every major leads somewhere: some job asks for it.
        assert any(major.id in j.when.majors for j in content.jobs.values()), major.id
        assert any(major.id == e.major for e in _all_effects(content)), major.id


def test_at_least_20_jobs_with_salaries_promotions_and_firing(content: Content) -> None:
    jobs = list(content.jobs.values())
    assert len(jobs) >= 20
    assert all(j.salary > 0 and 0 < j.fire_rate < 1 for j in jobs)
    promoted_to = {j.promotes_to for j in jobs if j.promotes_to}
    assert len(promoted_to) >= 5
    # Requirements vary: age, education, majors, stats.
    assert any(j.when.education for j in jobs) and any(j.when.majors for j in jobs) and any(j.when.min for j in jobs)
    # Some event can fire you.
    assert any(e.job == "none" for event in content.events.values() for e in _effects(event))


def test_relationships_family_friends_love_children_and_deaths(content: Content) -> None:
    family = {m.role for m in content.world.family}
    assert {"mother", "father", "sibling"} <= family
    added = {add.role for e in _all_effects(content) for add in e.npc_add}
    assert {"friend", "partner", "child"} <= added
    assert any(change.dies for e in _all_effects(content) for change in e.npc)
    assert any(change.leaves for e in _all_effects(content) for change in e.npc)
    assert any("married" in e.flags_add for e in _all_effects(content))


def test_illnesses_are_flags_that_doctors_treat(content: Content) -> None:
    illnesses = {f.id for f in content.flags.values() if f.kind == "illness"}
    assert len(illnesses) >= 5
    treated = {
        f
        for a in content.actions.values()
        for e in (a.effects, *(o.effects for o in a.outcomes))
        for f in e.flags_remove
    }
    assert len(illnesses & treated) >= 3
    # Some run a course (a follow-up that keeps coming while the flag is held),
    # some act each year.
    assert any(e.followup and set(e.when.flags) & illnesses for e in content.events.values())
    assert any(content.flags[f].yearly != Effects() for f in illnesses)


def test_salary_expenses_and_purchases(content: Content) -> None:
    assert content.world.expenses and 0 < content.world.tax < 1
    assets = {f.id for f in content.flags.values() if f.kind == "asset"}
    bought = {f for a in content.actions.values() if a.cost for f in a.effects.flags_add}
    assert len(assets & bought) >= 2
    assert any(content.flags[f].yearly.money for f in assets)


def test_every_role_has_a_persona_with_traits_and_manner(content: Content) -> None:
    roles = {add.role for e in _all_effects(content) for add in e.npc_add} | {m.role for m in content.world.family}
    for role in roles:
        personas = [p for p in content.personas.values() if role in p.roles]
        assert personas, role
        assert all(p.traits and p.manner and p.lines for p in personas)


def test_content_stats_prints_the_counts_as_one_json_object(
    content: Content, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["content", "stats"]) == 0
    stats = orjson.loads(capsys.readouterr().out)
    assert stats["events"] == len(content.events)
    assert stats["actions"] == len(content.actions)
    assert stats["jobs"] == len(content.jobs)
    assert stats["npc_personas"] == len(content.personas)
    assert stats["random_events"] + stats["followup_events"] == stats["events"]
    assert list(stats["events_per_stage"]) == content.stage_order
    assert all(0 < n <= stats["random_events"] for n in stats["events_per_stage"].values())
