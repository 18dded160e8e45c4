"""Broken content is refused at load with an error naming the file and the id.
Each case writes a modified copy of the shipped content into tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from baolife import content as content_pkg
from baolife.cli import main
from baolife.content import ContentError

GOOD_EVENT = """
[[event]]
id = "{id}"
title = "Test"
text = "A test event."
when = {when}
default = "a"
choices = [
  {{ key = "a", label = "A", effects = {{ {effects} }} }},
  {{ key = "b", label = "B" }},
]
"""


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A writable copy of the shipped content."""
    target = tmp_path / "content"
    shutil.copytree(content_pkg.DEFAULT_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def _error(folder: Path) -> str:
    with pytest.raises(ContentError) as info:
        content_pkg.load(folder)
    return str(info.value)


def test_the_copy_itself_loads(pack: Path) -> None:
    assert len(content_pkg.load(pack).events) == len(content_pkg.load().events)


@pytest.mark.parametrize(
    ("when", "effects", "expected"),
    [
        ('{ flags = ["no_such_flag"] }', "", "flag 'no_such_flag' is not declared in flags.toml"),
        ("{}", 'flags_add = ["undeclared"]', "flag 'undeclared' is not declared"),
        ('{ majors = ["astrology"] }', "", "unknown major 'astrology'"),
        ("{}", 'major = "astrology"', "effects major 'astrology' is not a major"),
        ("{ min_closeness = 50 }", "", "min_closeness and max_closeness need npc_roles"),
        ('{ npc_roles = ["butler"] }', "", "no persona speaks for role 'butler'"),
        ('{ stages = ["baby"], min_age = 40 }', "", "can never happen"),
        ("{}", 'schedule = [{ event = "nowhere" }]', "schedule event 'nowhere' is unknown"),
        ("{ min = { charisma = 3 } }", "", "unknown stat 'charisma'"),
        ("{}", 'feed = "Hello $nickname"', "unknown template name(s) ['nickname']"),
    ],
)
def test_a_bad_event_names_its_file_and_id(pack: Path, when: str, effects: str, expected: str) -> None:
    _append(pack / "events" / "teen.toml", GOOD_EVENT.format(id="broken_one", when=when, effects=effects))
    message = _error(pack)
    assert "events/teen.toml" in message and "'broken_one'" in message
    assert expected in message


def test_an_event_with_choices_cannot_have_effects_of_its_own(pack: Path) -> None:
    event = GOOD_EVENT.format(id="two_minds", when="{}", effects="")
    _append(pack / "events" / "baby.toml", event.replace('default = "a"', 'default = "a"\neffects = { happiness = 1 }'))
    message = _error(pack)
    assert "events/baby.toml: event 'two_minds'" in message and "puts its effects in the choices" in message


def test_an_event_needs_two_to_four_choices(pack: Path) -> None:
    eat = '  { key = "eat", label = "Eat it politely", effects = { happiness = 2, feed = "You ate your cake with'
    _replace(pack / "events" / "baby.toml", eat, "  # ")
    assert "events/baby.toml: event 'first_birthday': an event with choices needs 2 to 4" in _error(pack)


def test_a_followup_nothing_schedules_is_an_error(pack: Path) -> None:
    _append(
        pack / "events" / "health.toml",
        '\n[[event]]\nid = "orphan"\ntitle = "T"\ntext = "T"\nfollowup = true\neffects = { health = 1 }\n',
    )
    assert "events/health.toml: event 'orphan': followup event that nothing schedules" in _error(pack)


def test_a_followup_that_reschedules_itself_must_be_able_to_stop(pack: Path) -> None:
    _replace(pack / "events" / "health.toml", 'when = { flags = ["ill_flu"] }\n', "")
    message = _error(pack)
    assert "events/health.toml: event 'flu_course'" in message and "must require a flag or an NPC role" in message


def test_a_declared_flag_nothing_sets_is_an_error(pack: Path) -> None:
    _append(pack / "flags.toml", '\n[[flag]]\nid = "unused"\nlabel = "Unused"\nkind = "trait"\n')
    assert "flags.toml: flag 'unused': declared but no effect ever sets it" in _error(pack)


def test_a_flag_kind_must_be_known(pack: Path) -> None:
    _replace(pack / "flags.toml", 'label = "Brave"\nkind = "trait"', 'label = "Brave"\nkind = "mood"')
    assert "flags.toml: flag 'brave': kind 'mood'" in _error(pack)


def test_a_major_must_belong_to_a_level(pack: Path) -> None:
    _replace(pack / "education.toml", 'Fine Arts"\nlevel = "university"', 'Fine Arts"\nlevel = "art_school"')
    assert "education.toml: major 'arts': level 'art_school' is not an education level" in _error(pack)


def test_a_job_major_must_exist(pack: Path) -> None:
    _replace(pack / "jobs.toml", 'majors = ["law"]', 'majors = ["lawyering"]')
    assert "jobs.toml: job 'lawyer': unknown major 'lawyering'" in _error(pack)


def test_an_action_outcome_weight_must_be_positive(pack: Path) -> None:
    _replace(pack / "actions.toml", "{ weight = 9, effects = { health = 1 } }", "{ weight = 0, effects = {} }")
    assert "actions.toml: action 'play': outcome #1: weight must be positive" in _error(pack)


def test_a_persona_needs_traits_and_manner(pack: Path) -> None:
    _replace(pack / "personas.toml", 'traits = "calm, precise, reassuring, honest about risks"', 'traits = " "')
    assert "personas.toml: persona 'calm_doctor': needs roles, traits and manner" in _error(pack)


def test_world_settle_and_tax_are_checked(pack: Path) -> None:
    world = pack / "world.toml"
    _replace(world, 'stat = "happiness"', 'stat = "karma"')
    assert "world.toml: [world] settle: unknown stat 'karma'" in _error(pack)
    _replace(world, 'stat = "karma"', 'stat = "happiness"')
    _replace(world, "tax = 0.3 ", "tax = 1.5 ")
    assert "world.toml: [world] tax" in _error(pack)


def test_a_duplicate_id_names_both_files(pack: Path) -> None:
    _append(pack / "events" / "senior.toml", GOOD_EVENT.format(id="first_steps", when="{}", effects=""))
    message = _error(pack)
    assert "events/senior.toml: event 'first_steps': duplicate id (also in events/baby.toml)" in message


def test_content_stats_exits_non_zero_on_broken_content(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _append(pack / "events" / "teen.toml", GOOD_EVENT.format(id="broken_cli", when='{ flags = ["nope"] }', effects=""))
    assert main(["content", "stats", "--content", str(pack)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "events/teen.toml" in captured.err and "'broken_cli'" in captured.err


BAD_EVENTS = [
    # (the event's TOML after [[event]] and its id, what the error must say)
    (
        'title = "T"\ntext = "x"\ndefault = "nope"\n'
        'choices = [{ key = "a", label = "A" }, { key = "b", label = "B" }]\n',
        "default 'nope' is not one of its choices",
    ),
    ('title = "T"\ntext = "x"\nweigth = 2\n', "weigth"),  # a typo is an unknown field, not ignored
    ('title = "T"\ntext = "x"\nwhen = { stages = ["teenager"] }\n', "unknown stage 'teenager'"),
    ('title = "T"\ntext = "x"\ncooldown_days = "5"\n', "cooldown_days"),  # no silent "5" -> 5
]


@pytest.mark.parametrize(("body", "expected"), BAD_EVENTS)
def test_bad_event_fields_are_named(pack: Path, body: str, expected: str) -> None:
    _append(pack / "events" / "teen.toml", f'\n[[event]]\nid = "odd_one"\n{body}')
    message = _error(pack)
    assert "events/teen.toml: event 'odd_one'" in message and expected in message


def test_a_job_effect_and_a_promotion_must_name_jobs(pack: Path) -> None:
    action = '\n[[action]]\nid = "astronaut"\nlabel = "Fly"\ngroup = "career"\neffects = { job = "astronaut" }\n'
    _append(pack / "actions.toml", action)
    assert "actions.toml: action 'astronaut': effects job 'astronaut' is not a job" in _error(pack)


def test_a_toml_syntax_error_names_the_file(pack: Path) -> None:
    _append(pack / "events" / "teen.toml", "\n[[event]\nid = 'x'\n")
    assert _error(pack).startswith("events/teen.toml: not valid TOML")


def test_world_check_days_must_be_ordered(pack: Path) -> None:
    _replace(pack / "world.toml", "check_min_days", "check_min_days = 500\n#")
    assert "check_min_days must be >= 1 and <= check_max_days" in _error(pack)


_BABY_LINES = 'stages = ["baby"]\ngreetings = ["Hello, my little sweetheart!"'


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (_BABY_LINES, _BABY_LINES.replace("baby", "infant"), "persona 'warm_parent': lines #1: unknown stage 'infant'"),
        (_BABY_LINES, _BABY_LINES.replace('["baby"]', "[]"), "persona 'warm_parent': lines #1: stages is empty"),
        (_BABY_LINES, 'roles = ["teacher"]\n' + _BABY_LINES, "lines #1: role 'teacher' is not one of"),
        (_BABY_LINES, 'npc_stages = ["toddler"]\n' + _BABY_LINES, "lines #1: unknown stage 'toddler'"),
        (_BABY_LINES, 'mood = "happy"\n' + _BABY_LINES, "persona 'warm_parent'"),
        (
            'replies = ["*sings you a soft lullaby*"',
            'greetings_too = ["*sings you a soft lullaby*"',
            "persona 'warm_parent'",
        ),
        (
            '# Anyone to a baby.\n[[default_lines]]\nstages = ["baby"]',
            '# Anyone to a baby.\n[[default_lines]]\nstages = ["child"]',
            "personas.toml: no default_lines for role 'boss' at stage 'baby'",
        ),
        (
            '# Anyone to a baby.\n[[default_lines]]\nstages = ["baby"]',
            '# Anyone to a baby.\n[[default_lines]]\nstages = ["baby", "elder"]',
            "personas.toml: default_lines #5: unknown stage 'elder'",
        ),
    ],
)
def test_scripted_lines_are_checked(pack: Path, old: str, new: str, expected: str) -> None:
    _replace(pack / "personas.toml", old, new)
    assert expected in _error(pack)


def test_scripted_lines_need_a_reply(pack: Path) -> None:
    personas = pack / "personas.toml"
    _replace(personas, 'replies = ["Who\'s a tiny person? You are!"', 'questions = ["Who\'s a tiny person? You are!"')
    assert "personas.toml: default_lines #5: needs at least one reply" in _error(pack)
