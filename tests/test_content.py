"""Content is data, validated at start; errors name the file and the id."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from baolife import content as content_pkg
from baolife.content import ContentError
from baolife.tick.registry import EventRegistry


def test_shipped_content_loads_and_covers_every_stage() -> None:
    content = content_pkg.load()
    registry = EventRegistry(content)
    for stage in content.stage_order:
        assert registry.statistics().max_candidates[stage] > 0, stage
    for event in content.events.values():
        if event.choices:
            assert event.choice(event.default) is not None


def _broken(tmp_path: Path, rel: str, old: str, new: str) -> Path:
    folder = tmp_path / "content"
    shutil.copytree(content_pkg.DEFAULT_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = folder / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))
    return folder


@pytest.mark.parametrize(
    ("rel", "old", "new", "says"),
    [
        (
            "events/childhood.toml",
            'default = "wait"',
            'default = "nope"',
            "events/childhood.toml: event 'first_steps': default 'nope' is not one of its choices",
        ),
        (
            "events/childhood.toml",
            "{ happiness = 3, health = 1,",
            "{ happines = 3, health = 1,",
            "events/childhood.toml: event 'first_steps'",
        ),
        (
            "events/youth.toml",
            'stages = ["teen", "young_adult"], not_npc_roles',
            'stages = ["teenager", "young_adult"], not_npc_roles',
            "events/youth.toml: event 'crush': unknown stage 'teenager'",
        ),
        (
            "actions.toml",
            'effects = { job = "best" }',
            'effects = { job = "astronaut" }',
            "actions.toml: action 'find_job': effects job 'astronaut' is not a job",
        ),
        (
            "actions.toml",
            "cooldown_days = 5\neffects = { smarts = 2",
            'cooldown_days = "5"\neffects = { smarts = 2',
            "actions.toml: action 'study'",
        ),
        (
            "jobs.toml",
            'promotes_to = "store_manager"',
            'promotes_to = "ceo"',
            "jobs.toml: job 'cashier': promotes_to 'ceo' is not a job",
        ),
        (
            "events/adulthood.toml",
            'feed = "Your child was born." }',
            'feed = "Your $kid was born." }',
            "events/adulthood.toml: event 'baby_born': unknown template name(s) ['kid']",
        ),
        (
            "events/adulthood.toml",
            'id = "lottery"',
            'id = "checkup"',
            "events/adulthood.toml: event 'checkup': duplicate id",
        ),
        (
            "world.toml",
            'role = "mother"',
            'role = "aunt"',
            "world.toml: [world] family: no persona speaks for role 'aunt'",
        ),
        (
            "world.toml",
            "check_min_days = 20",
            "check_min_days = 90",
            "check_min_days must be >= 1 and <= check_max_days",
        ),
        ("events/youth.toml", '[[event]]\nid = "crush"', '[[event]\nid = "crush"', "events/youth.toml: not valid TOML"),
    ],
)
def test_broken_content_is_refused_naming_file_and_id(tmp_path: Path, rel: str, old: str, new: str, says: str) -> None:
    folder = _broken(tmp_path, rel, old, new)
    with pytest.raises(ContentError) as info:
        content_pkg.load(folder)
    assert says in str(info.value)
