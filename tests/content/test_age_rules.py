"""Content that breaks its own age rules is refused at load (and so by
``baolife content check``): a job, an education level, a major or an asset
given at an age that cannot have it, an event outside its stage file's stage,
``job = "best"`` where no job can be had, a repeatable event with no cooldown,
an action without a valid group. Each case is the tiny pack of tests/data/mini
with one broken piece added."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from baolife import content as content_pkg
from baolife.cli import main
from baolife.content import ContentError, ages

MINI = Path(__file__).parent.parent / "data" / "mini"

# A job of adults only, and an event for children that hands it out.
ADULT_JOB = (
    '\n[[job]]\nid = "pro"\ntitle = "Professional athlete"\nsalary = 900\nfire_rate = 0.02\nwhen = { min_age = 18 }\n'
)


def _event(ident: str, when: str, effects: str, *, extra: str = "cooldown_days = 400") -> str:
    return f"""
[[event]]
id = "{ident}"
title = "Test"
text = "A test event."
when = {when}
{extra}
default = "no"
choices = [
  {{ key = "yes", label = "Yes", effects = {{ {effects} }} }},
  {{ key = "no", label = "No" }},
]
"""


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    """A writable copy of the mini pack (stages baby 0, child 3, adult 18)."""
    target = tmp_path / "pack"
    shutil.copytree(MINI, target)
    return target


def _append(path: Path, text: str) -> None:
    path.write_text((path.read_text() if path.exists() else "") + text)


def _error(folder: Path) -> str:
    with pytest.raises(ContentError) as info:
        content_pkg.load(folder)
    return str(info.value)


def test_the_built_in_content_keeps_its_own_age_rules() -> None:
    content = content_pkg.load()  # would raise on any problem; the list says why
    assert ages.problems(content) == []
    spans = ages.stage_spans(content)
    for ev in content.events.values():
        stage = ages.STAGE_FILES.get(Path(ev.source).name)
        win = ages.window(ev.when, spans)
        assert win is not None, ev.id
        if stage:
            assert spans[stage][0] <= win[0] and win[1] <= spans[stage][1], ev.id


def test_the_mini_pack_passes(pack: Path) -> None:
    assert ages.problems(content_pkg.load(pack)) == []


def test_a_job_given_below_its_age_is_refused_naming_the_choice(pack: Path) -> None:
    _append(pack / "jobs.toml", ADULT_JOB)
    _append(pack / "events" / "mini.toml", _event("scout", '{ stages = ["child"], min_age = 15 }', 'job = "pro"'))
    message = _error(pack)
    assert "events/mini.toml: event 'scout': choice 'yes': gives job 'pro' (Professional athlete)" in message
    assert "at ages 15-18, but it needs ages 18+" in message


def test_the_same_job_at_its_own_ages_is_fine(pack: Path) -> None:
    _append(pack / "jobs.toml", ADULT_JOB)
    _append(pack / "events" / "mini.toml", _event("scout", '{ stages = ["adult"], max_age = 24 }', 'job = "pro"'))
    assert "scout" in content_pkg.load(pack).events


def test_a_job_in_an_action_outcome_is_checked_at_the_action_s_ages(pack: Path) -> None:
    _append(pack / "jobs.toml", ADULT_JOB)
    _append(
        pack / "actions.toml",
        '\n[[action]]\nid = "try_out"\nlabel = "Try out"\ngroup = "career"\nwhen = { min_age = 16 }\n'
        'outcomes = [{ weight = 1, effects = {} }, { weight = 1, effects = { job = "pro" } }]\n',
    )
    assert "actions.toml: action 'try_out': outcome #2: gives job 'pro'" in _error(pack)


def test_an_education_level_and_a_major_below_their_ages_are_refused(pack: Path) -> None:
    _append(
        pack / "education.toml",
        '\n[[level]]\nid = "uni"\nlabel = "University"\nyears = 4\nthen = "degree"\nwhen = { min_age = 17 }\n'
        '\n[[major]]\nid = "law"\nlabel = "Law"\nlevel = "uni"\n',
    )
    _append(pack / "events" / "mini.toml", _event("early_uni", '{ stages = ["child"] }', 'education = "uni"'))
    _append(pack / "events" / "mini.toml", _event("early_law", '{ stages = ["child"] }', 'major = "law"'))
    message = _error(pack)
    assert "event 'early_uni': choice 'yes': starts education 'uni' at ages 3-18, but it needs ages 17+" in message
    # The major takes its level's ages too.
    assert "event 'early_law': choice 'yes': gives major 'law' at ages 3-18, but it needs ages 17+" in message
    assert "(and 1 more below)" in message


def test_an_asset_has_a_minimum_age(pack: Path) -> None:
    _append(pack / "flags.toml", '\n[[flag]]\nid = "house"\nlabel = "Home owner"\nkind = "asset"\nmin_age = 18\n')
    _append(pack / "events" / "mini.toml", _event("toy_house", '{ stages = ["child"] }', 'flags_add = ["house"]'))
    assert "event 'toy_house': choice 'yes': gives asset 'house' at ages 3-18, but it needs ages 18+" in _error(pack)
    path = pack / "events" / "mini.toml"
    path.write_text(path.read_text().replace('{ stages = ["child"] }', '{ stages = ["adult"] }'))
    assert content_pkg.load(pack).flags["house"].min_age == 18


def test_job_best_needs_some_job_at_the_event_s_ages(pack: Path) -> None:
    path = pack / "jobs.toml"
    path.write_text(path.read_text().replace("min_age = 0", "min_age = 18"))
    _append(pack / "events" / "mini.toml", _event("hired_baby", '{ stages = ["baby"] }', 'job = "best"'))
    assert "event 'hired_baby': choice 'yes': job 'best' at ages 0-3, but no job can be had" in _error(pack)


def test_an_event_in_a_stage_file_stays_in_that_stage(pack: Path) -> None:
    childhood = pack / "events" / "childhood.toml"
    _append(childhood, _event("in_stage", '{ stages = ["child"], min_age = 5 }', "happiness = 1"))
    assert "in_stage" in content_pkg.load(pack).events
    _append(childhood, _event("spills_over", "{ min_age = 5, max_age = 20 }", "happiness = 1"))
    message = _error(pack)
    assert "events/childhood.toml: event 'spills_over': can happen at ages 5-20" in message
    assert "outside its file's stage 'child' (ages 3-18)" in message


def test_a_followup_in_a_stage_file_needs_its_ages_too(pack: Path) -> None:
    _append(
        pack / "events" / "childhood.toml",
        '\n[[event]]\nid = "late_news"\ntitle = "T"\ntext = "T"\nfollowup = true\neffects = { smarts = 1 }\n',
    )
    _append(
        pack / "actions.toml",
        '\n[[action]]\nid = "ask"\nlabel = "Ask"\ngroup = "daily"\n'
        'effects = { schedule = [{ event = "late_news", in_days = 2 }] }\n',
    )
    assert "event 'late_news': can happen at ages 0+, outside its file's stage 'child'" in _error(pack)


def test_an_action_that_can_never_be_taken_is_refused(pack: Path) -> None:
    _append(
        pack / "actions.toml",
        '\n[[action]]\nid = "never"\nlabel = "Never"\ngroup = "daily"\nwhen = { stages = ["baby"], min_age = 10 }\n',
    )
    assert "actions.toml: action 'never': its stages and ages never overlap" in _error(pack)


@pytest.mark.parametrize(
    ("extra", "refused"),
    [("", True), ("cooldown_days = 0", True), ("cooldown_days = 365", False), ("once = true", False)],
)
def test_a_repeatable_event_needs_a_cooldown(pack: Path, extra: str, refused: bool) -> None:
    _append(pack / "events" / "mini.toml", _event("again", '{ stages = ["child"] }', "happiness = 1", extra=extra))
    if refused:
        assert "event 'again': a repeatable event needs cooldown_days (or once = true)" in _error(pack)
    else:
        assert "again" in content_pkg.load(pack).events


@pytest.mark.parametrize(("line", "said"), [("", "group is missing"), ('group = "fun"\n', "group is 'fun'")])
def test_every_action_has_a_known_group(pack: Path, line: str, said: str) -> None:
    _append(pack / "actions.toml", f'\n[[action]]\nid = "loaf"\nlabel = "Loaf"\n{line}')
    message = _error(pack)
    assert f"actions.toml: action 'loaf': {said}" in message
    assert "daily" in message and "relationships" in message


def test_content_check_refuses_and_names_the_event(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _append(pack / "jobs.toml", ADULT_JOB)
    _append(pack / "events" / "mini.toml", _event("scout", '{ stages = ["child"], min_age = 15 }', 'job = "pro"'))
    assert main(["content", "check", "--content", str(pack)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("baolife: content: events/mini.toml: event 'scout': choice 'yes': gives job 'pro'")
    shutil.rmtree(pack)
    shutil.copytree(MINI, pack)
    assert main(["content", "check", "--content", str(pack)]) == 0


def test_a_baby_has_free_things_to_do_from_birth() -> None:
    content = content_pkg.load()
    spans = ages.stage_spans(content)
    # Actions of babies and toddlers only: open at birth, closed by school age.
    babies = [a for a in content.actions.values() if (w := ages.window(a.when, spans)) and w[0] == 0 and w[1] <= 6]
    assert len(babies) >= 4
    assert all(a.cost == 0 and 20 <= a.cooldown_days <= 60 and not a.when.flags for a in babies)
