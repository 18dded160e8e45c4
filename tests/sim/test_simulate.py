"""The balance simulation: whole lives on the real World, on virtual time.
The runs are small; the 10,000-life report is `baolife simulate`, not a test.
The pacing and debt targets of issue 17 are in test_targets.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from baolife.cli import main
from baolife.content.schema import Content
from baolife.sim import NEUTRAL, BalanceReport, simulate
from baolife.sim.bots import IDLE, ActionGuide


def test_every_life_ends_and_is_counted(report: BalanceReport) -> None:
    assert len(report.lives) == 60
    assert report.unfinished == 0
    assert all(life.finished and life.cause for life in report.lives)
    days = sum(round(life.years * report.year_days) for life in report.lives)
    # Each life lived its days on the engine (the day a life ends is counted too).
    assert abs(report.player_days - days) <= len(report.lives)


def test_neutral_lifespans_are_plausible(report: BalanceReport) -> None:
    d = report.to_dict()["lifespan_years"]
    assert 55 <= d["median"] <= 95
    assert d["p10"] < d["median"] < d["p90"] < 115
    assert sum(report.to_dict()["lifespan_by_decade"].values()) == 60


def test_the_registry_cost_is_a_small_share_and_consistent(report: BalanceReport, content: Content) -> None:
    assert report.indexed_events == sum(1 for e in content.events.values() if not e.followup)
    assert 0 < report.registry_share <= 0.15
    assert report.registry_share == pytest.approx(report.evaluations / report.player_days / report.indexed_events)


def test_bots_play_through_the_commands(report: BalanceReport, content: Content) -> None:
    assert report.prompts_answered > 0 and report.prompts_expired > 0
    # Expired prompts ran out to their default; answered ones were answered by bots.
    assert report.prompts_answered > report.prompts_expired
    assert set(report.actions_taken) <= set(content.actions)
    assert report.actions_refused <= sum(report.actions_taken.values()) / 100
    assert sum(report.event_counts.values()) > 100 * len(report.lives)


def test_the_report_lists_events_that_never_fired(report: BalanceReport, content: Content) -> None:
    never = report.never_fired
    assert set(never) <= set(content.events)
    assert all(report.event_counts.get(e, 0) == 0 for e in never)
    assert len(never) + len([e for e in content.events if report.event_counts.get(e)]) == len(content.events)


def test_distributions_add_up(report: BalanceReport) -> None:
    d = report.to_dict()
    assert sum(d["education"].values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(d["jobs_share_of_working_years"].values()) == pytest.approx(1.0, abs=1e-3)
    assert d["money_at_death"]["count"] == 60
    assert d["money_at_death"]["p10"] <= d["money_at_death"]["median"] <= d["money_at_death"]["p90"]
    assert sum(d["causes_of_death"].values()) == 60


def test_markdown_and_json_carry_the_same_report(report: BalanceReport) -> None:
    text = report.markdown()
    for heading in (
        "## Targets",
        "## Pacing (real time)",
        "## Repeats",
        "## Debt",
        "## Lifespan",
        "## Money",
        "## Education",
        "## Jobs",
        "## Events",
        "## Cost of the event registry",
    ):
        assert heading in text
    assert f"{report.to_dict()['lifespan_years']['median']:.1f}" in text
    assert json.loads(orjson.dumps(report.to_dict()))["lives"] == 60


def test_a_seed_replays_and_another_seed_differs(content: Content) -> None:
    def run(seed: int) -> dict[str, object]:
        d = simulate(content, players=8, seed=seed, year_days=24).to_dict()
        d.pop("seconds")
        return d

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_a_seed_replays_across_processes_whatever_the_hash_seed() -> None:
    """String hashing differs between processes; nothing may depend on it."""
    code = (
        "import orjson; from baolife.content import load; from baolife.sim import simulate; "
        "d = simulate(load(), players=6, seed=5, year_days=24).to_dict(); d.pop('seconds'); "
        "print(orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode())"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    ]
    assert outs[0] == outs[1] and outs[0]


def test_an_idle_player_only_gets_defaults(content: Content) -> None:
    report = simulate(content, players=4, seed=2, year_days=24, policy=IDLE)
    assert report.prompts_answered == 0 and not report.actions_taken
    assert report.prompts_expired > 0


def test_the_guide_reads_needs_and_big_decisions_from_the_content(content: Content) -> None:
    guide = ActionGuide(content)
    illnesses = {f.id for f in content.flags.values() if f.kind == "illness"}
    assert guide.cures and all(cured <= illnesses for cured in guide.cures.values())
    assert guide.job_finders
    for action in guide.big:
        a = content.actions[action]
        effects = [a.effects, *(o.effects for o in a.outcomes)]
        assert a.cost >= 1000 or any(
            e.job or e.education or e.major or e.schedule or e.flags_add or e.flags_remove for e in effects
        )
    assert NEUTRAL.big_decision_weight < 1 and set(guide.big) < set(content.actions)


def test_cli_simulate_prints_json_or_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--players", "3", "--seed", "1", "--year-days", "12", "--json", "--quiet"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["lives"] == 3 and out["command"] == "baolife simulate --players 3 --seed 1 --year-days 12"
    assert main(["simulate", "--players", "2", "--seed", "1", "--year-days", "12", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("# Balance report")


def test_cli_simulate_refuses_a_bad_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--players", "0"])
    assert info.value.code == 2
    assert "--players" in capsys.readouterr().err


def test_plots_are_written_as_png(tmp_path: Path, content: Content) -> None:
    pytest.importorskip("matplotlib")
    from baolife.sim.plots import write_plots

    small = simulate(content, players=5, seed=1, year_days=24)
    paths = write_plots(small, tmp_path / "charts")
    assert {p.name for p in paths} == {"lifespan.png", "money.png", "education.png", "jobs.png", "events.png"}
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
