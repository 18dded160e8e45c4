"""The game's numbers live in world.toml ([world.birth], [world.work],
[world.death], birthdays, talk_closeness): each is checked at load like the
rest of the content, a bad one is refused naming the file, the table and the
key, and the rules take them from there (a changed number changes the game)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import attrs
import pytest

from baolife import content as content_pkg
from baolife.content import ContentError
from baolife.content.schema import Content
from baolife.model import STAT_NAMES, Npc, Stats
from baolife.tick.engine import World
from baolife.tick.rules import Rules, Unit

YEAR = 365


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A writable copy of the shipped content."""
    target = tmp_path / "content"
    shutil.copytree(content_pkg.DEFAULT_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _error(folder: Path) -> str:
    with pytest.raises(ContentError) as info:
        content_pkg.load(folder)
    return str(info.value)


def _with(content: Content, **tables: dict[str, Any]) -> Content:
    """``content`` with some fields of world tables changed (``birth={...}``)
    or, for ``world={...}``, of the world itself."""
    world = content.world
    changes = {name: attrs.evolve(getattr(world, name), **fields) for name, fields in tables.items() if name != "world"}
    return attrs.evolve(content, world=attrs.evolve(world, **changes, **tables.get("world", {})))


def test_stat_names_are_the_fields_of_stats() -> None:
    # One definition (model.py); content validates stat names against it.
    assert STAT_NAMES == tuple(f.name for f in attrs.fields(Stats))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("health = [60, 95]", "health = [95, 60]", "[world.birth] health must be [min, max] with 0 <= min <= max"),
        ("smarts = [25, 85]", "smarts = [25, 101]", "[world.birth] smarts must be [min, max]"),
        ("looks = [25, 85]", "looks = [-1, 85]", "[world.birth] looks must be [min, max]"),
        ("looks = [25, 85]", 'looks = [25, "85"]', "expected int @ $.birth.looks"),
        ("promote_chance = 0.4", "promote_chance = 1.5", "[world.work] promote_chance must be in 0..1"),
        ("offer_share = 0.5", "offer_share = -0.1", "[world.work] offer_share must be in 0..1"),
        ("unhappy_below = 25", "unhappy_below = 120", "[world.work] unhappy_below must be a happiness in 0..100"),
        ("unhappy_fire_factor = 2.0", "unhappy_fire_factor = -2.0", "unhappy_fire_factor must not be negative"),
        ("fired_happiness = -8", "fired_happiness = -800", "[world.work] fired_happiness must be in -100..100"),
        ("poor_health = 10", "poor_health = 101", "[world.death] poor_health must be a health in 0..100"),
        ("old_age = 70", "old_age = -70", "[world.death] old_age must not be negative"),
        ('causes = ["an illness", "an accident", "a heart attack"]', "causes = []", "causes at least one"),
        ('infant_cause = "complications in infancy"', 'infant_cause = " "', "none of them empty"),
        ("grief_per = 8", "grief_per = 0", "grief_per must be >= 1"),
        ("birthdays = [1, 5, 10,", "birthdays = [5, 1, 10,", "[world] birthdays must be ages >= 1, rising, each once"),
        ("birthdays = [1, 5, 10,", "birthdays = [0, 5, 10,", "[world] birthdays must be ages >= 1"),
        ("talk_closeness = 1 ", "talk_closeness = -1 ", "[world] talk_closeness must be in 0..100"),
        # Unknown keys and missing tables are refused like everywhere else.
        ("promote_chance = 0.4", "promote_chanse = 0.4", "world.toml: [world]"),
        ("[world.death]", "[world.dying]", "world.toml: [world]"),
        # The world's other numbers have no default in the code either.
        ("[world.hazard]", "[world.hazards]", "world.toml: [world]"),
        ("npc_growth = 0.1", "", "world.toml: [world]"),
        ("adult_age = 18", "", "world.toml: [world]"),
        ("check_max_days = 45", "", "world.toml: [world]"),
        ("timeout_days = 20 ", "", "world.toml: [world]"),
    ],
)
def test_bad_numbers_are_refused(pack: Path, old: str, new: str, expected: str) -> None:
    _replace(pack / "world.toml", old, new)
    message = _error(pack)
    assert message.startswith("world.toml: "), message
    assert expected in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("fire_rate = 0.08\n", "", "jobs.toml: job 'fast_food_worker'"),
        ("promote_after_years = 2\n", "", "promotes_to needs promote_after_years"),
        ("fire_rate = 0.08\n", "fire_rate = 1.5\n", "fire_rate must be in 0..1"),
    ],
)
def test_job_numbers_are_required_and_checked(pack: Path, old: str, new: str, expected: str) -> None:
    _replace(pack / "jobs.toml", old, new)
    assert expected in _error(pack)


def test_birth_stats_come_from_content(content: Content) -> None:
    fixed = _with(content, birth={"health": (70, 70), "happiness": (3, 3), "smarts": (99, 99), "looks": (0, 0)})
    p = Rules(fixed, year_days=YEAR, rng=random.Random(1)).new_life(1, "Birth Test", 1)
    assert (p.stats.health, p.stats.happiness, p.stats.smarts, p.stats.looks) == (70, 3, 99, 0)
    # The shipped ranges hold for many newborns.
    rules = Rules(content, year_days=YEAR, rng=random.Random(2))
    for pid in range(200):
        stats = rules.new_life(pid, "Range Test", 1).stats
        for stat in STAT_NAMES:
            low, high = getattr(content.world.birth, stat)
            assert low <= getattr(stats, stat) <= high


def _worker(rules: Rules, job: str, happiness: int) -> Any:
    p = rules.new_life(1, "Work Test", 1)
    p.npcs.clear()  # no relative can die and change happiness
    p.age_days, p.job, p.job_since = 40 * YEAR, job, 30 * YEAR
    p.stats.happiness = happiness
    p.stats.smarts = p.stats.looks = p.stats.health = 100
    return p


def test_promotion_follows_world_work(content: Content) -> None:
    calm = _with(content, world={"settle": (), "drift": ()})
    rules = Rules(calm, year_days=YEAR, rng=random.Random(3))
    job = next(
        j
        for j in content.jobs.values()
        if j.promotes_to and rules.allows(content.jobs[j.promotes_to].when, _worker(rules, j.id, 60))
    )
    for chance, promoted in ((1.0, True), (0.0, False)):
        no_firing = {"promote_chance": chance, "unhappy_fire_factor": 0.0, "unhappy_below": 101}
        rules = Rules(_with(calm, work=no_firing), year_days=YEAR, rng=random.Random(4))
        p = _worker(rules, job.id, 60)
        rules.yearly(Unit(p, []))
        assert p.job == (job.promotes_to if promoted else job.id)


def test_firing_follows_world_work(content: Content) -> None:
    job = next(j for j in content.jobs.values() if j.when.max_age > 50)
    jobs = {**content.jobs, job.id: attrs.evolve(job, fire_rate=0.5)}
    work = {"promote_chance": 0.0, "unhappy_below": 30, "unhappy_fire_factor": 2.0, "fired_happiness": -7}
    custom = attrs.evolve(_with(content, work=work, world={"settle": (), "drift": ()}), jobs=jobs)
    rules = Rules(custom, year_days=YEAR, rng=random.Random(5))
    # Unhappy: the rate doubles to 1, so always fired, and fired_happiness on top.
    for _ in range(20):
        p = _worker(rules, job.id, 29)
        rules.yearly(Unit(p, []))
        assert p.job is None
        assert p.stats.happiness == 29 - 7
    # At the threshold (not below it): the job's own 0.5, so some keep the job.
    kept = 0
    for _ in range(40):
        p = _worker(rules, job.id, 30)
        rules.yearly(Unit(p, []))
        kept += p.job == job.id
    assert 0 < kept < 40


def test_death_causes_come_from_content(content: Content) -> None:
    custom = _with(
        content,
        death={"poor_health": 40, "old_age": 50.0, "causes": ("a falling piano",), "old_age_cause": "a long life"},
    )
    rules = Rules(custom, year_days=YEAR, rng=random.Random(6))
    p = rules.new_life(1, "Death Test", 1)
    p.age_days, p.stats.health = 30 * YEAR, 80
    assert rules.death_cause(p) == "a falling piano"
    p.stats.health = 40
    assert rules.death_cause(p) == custom.world.death.poor_health_cause
    p.stats.health, p.age_days = 80, 50 * YEAR
    assert rules.death_cause(p) == "a long life"
    p.age_days = 100
    assert rules.death_cause(p) == custom.world.death.infant_cause


def test_grief_follows_content(content: Content) -> None:
    # An NPC that dies at the birthday (hazard 1) costs max(grief_min, closeness // grief_per).
    sure_death = attrs.evolve(content.world.hazard, npc_base=1.0, npc_growth=0.0)
    for grief_min, grief_per, closeness, loss in ((2, 8, 80, 10), (30, 8, 80, 30), (0, 1, 50, 50)):
        custom = _with(content, death={"grief_min": grief_min, "grief_per": grief_per}, world={"hazard": sure_death})
        custom = _with(custom, world={"settle": (), "drift": ()})
        rules = Rules(custom, year_days=YEAR, rng=random.Random(7))
        p = rules.new_life(1, "Grief Test", 1)
        p.npcs = [Npc(id=1, name="Old Friend", role="friend", closeness=closeness, persona="")]
        p.age_days, p.stats.happiness = 40 * YEAR, 90
        rules.yearly(Unit(p, []))
        assert not p.npcs[0].alive
        assert p.stats.happiness == 90 - loss


def test_birthdays_and_talk_closeness_come_from_content(content: Content) -> None:
    custom = _with(content, world={"birthdays": (7,), "talk_closeness": 5})
    rules = Rules(custom, year_days=YEAR, rng=random.Random(8))
    p = rules.new_life(1, "Birthday Test", 1)
    p.npcs.clear()
    for years in (5, 7, 10):
        p.age_days = years * YEAR
        rules.yearly(Unit(p, []))
    turned = [line for _age, line in p.story if line.startswith("You turned")]
    assert turned == ["You turned 7."]
    world = World(custom, day_ticks=1, year_days=YEAR, rng=random.Random(9))
    q = rules.new_life(2, "Talk Test", 1)
    q.npcs = [Npc(id=1, name="Pal", role="friend", closeness=97, persona="")]
    world.join(q, 0)
    world.npc_reply(2, q.life, 1, None, "hello")
    assert q.npcs[0].closeness == 100  # +5, clamped at the top of the scale
    world.npc_reply(2, q.life, 1, None, "again")
    assert q.npcs[0].closeness == 100
