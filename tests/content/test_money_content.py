"""Content checks of money rules, warning thresholds and NPC-targeted
actions: a broken copy of the shipped content is refused at load, naming
the file and the id."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from baolife import content as content_pkg
from baolife.content import ContentError

TARGETED = """
[[action]]
id = "test_target"
label = "Test"
group = "relationships"
{fields}
"""


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(content_pkg.DEFAULT_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def _error(folder: Path) -> str:
    with pytest.raises(ContentError) as info:
        content_pkg.load(folder)
    return str(info.value)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ('target = "npc"', "action 'test_target': an action with target = \"npc\" needs roles"),
        ('roles = ["mother"]', "action 'test_target': an action with target = \"npc\" needs roles"),
        ('target = "crowd"\nroles = ["mother"]', 'target must be "npc" or absent'),
        ('target = "npc"\nroles = ["dragon"]', "roles: no persona speaks for role 'dragon'"),
        ("effects = { closeness = 3 }", "closeness and npc_money act on the target; the action has none"),
        (
            'target = "npc"\nroles = ["mother"]\neffects = { npc_money = { mother = -5 } }',
            "npc_money 'mother' must not be negative",
        ),
    ],
)
def test_targeted_actions_are_checked(pack: Path, fields: str, expected: str) -> None:
    (pack / "actions.toml").write_text((pack / "actions.toml").read_text() + TARGETED.format(fields=fields))
    message = _error(pack)
    assert message.startswith("actions.toml: ") and expected in message


def test_an_event_cannot_use_the_target_only_effects(pack: Path) -> None:
    _replace(pack / "events" / "money.toml", "effects = { happiness = -3, health = -1,", "effects = { closeness = 2,")
    assert "event 'debt_stress'" in _error(pack) and "NPC-targeted actions only" in _error(pack)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('payers = ["mother", "father"]', 'payers = ["uncle"]', "[world.money] payers: no persona speaks for role"),
        ('debt_flag = "in_debt"', 'debt_flag = "broke"', "flag 'broke' is not declared"),
        ("adult_age = 18", "adult_age = -1", "adult_age must not be negative"),
        ("low = 30\ncritical = 15", "low = 15\ncritical = 30", "[world.warnings.health]: needs 0 <= critical < low"),
        ("[world.warnings.health]", "[world.warnings.wealth]", "[world.warnings.wealth]: unknown stat"),
    ],
)
def test_money_rules_and_thresholds_are_checked(pack: Path, old: str, new: str, expected: str) -> None:
    _replace(pack / "world.toml", old, new)
    assert expected in _error(pack)


def test_the_debt_flag_needs_no_effect_to_set_it_the_engine_does(pack: Path) -> None:
    content = content_pkg.load(pack)
    assert content.world.money.debt_flag == "in_debt" and "in_debt" in content.flags
