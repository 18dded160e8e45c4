"""Issue 17's targets, measured by the simulation: pacing in real time (one
tick is one real second of play) and no debt before adulthood; how those
figures are measured (birthdays crossed by multi-day steps, gaps, repeats);
the progress output; and the parallel split."""

from __future__ import annotations

import io
import math

import attrs
import pytest

from baolife.cli import main
from baolife.content.schema import Content
from baolife.sim import BalanceReport, simulate
from baolife.sim.progress import LINE_EVERY_SECONDS, Progress
from baolife.sim.report import ADULT_AGE, TARGETS, WORKING_AGE
from baolife.sim.run import LIVES_PER_WORLD

# ----------------------------------------------------------------- the targets


def test_the_first_choice_comes_within_30_seconds(report: BalanceReport) -> None:
    first = report.pacing()["first_choice_seconds"]
    assert first["never"] <= len(report.lives) // 20  # only lives that end in their first seconds
    assert first["p95"] <= TARGETS.first_choice_seconds == 30


def test_something_to_do_within_2_minutes(report: BalanceReport) -> None:
    first = report.pacing()["first_action_seconds"]
    assert first["p95"] <= TARGETS.something_to_do_seconds == 120


def test_a_prompt_or_an_action_at_least_every_30_seconds_in_every_stage(report: BalanceReport) -> None:
    stages = report.pacing()["stages"]
    assert set(stages) == set(report.stages)
    gaps = {stage: v["longest_gap_seconds"]["p95"] for stage, v in stages.items() if v["lives"]}
    assert all(gap <= TARGETS.longest_gap_seconds == 30 for gap in gaps.values()), gaps


def test_prompts_come_in_every_stage(report: BalanceReport) -> None:
    # About one prompt every 20-40 s of play at every stage: 90-180 an hour.
    rates = {stage: v["prompts_per_hour"] for stage, v in report.pacing()["stages"].items() if v["lives"] >= 10}
    assert all(60 <= rate <= 240 for rate in rates.values()), rates


def test_a_median_life_takes_one_to_two_hours_of_play(report: BalanceReport) -> None:
    assert 1.0 <= report.pacing()["life_hours"]["median"] <= 2.0


def test_no_life_is_in_debt_before_adulthood(report: BalanceReport) -> None:
    assert report.debt()["lives_in_debt_before_adult_age"] == 0
    assert ADULT_AGE == 18


def test_every_target_passes_and_says_so(report: BalanceReport) -> None:
    targets = report.to_dict()["targets"]
    assert len(targets) == 5
    assert [t["target"] for t in targets if not t["pass"]] == []
    assert "**FAIL**" not in report.markdown()


# ----------------------------------------------------------------- how they are measured


def test_without_actions_the_gaps_show_and_the_targets_fail(content: Content) -> None:
    """The measure can fail: with no actions at all, only prompts break the
    silence, and the gap between them is far above 30 s."""
    bare = attrs.evolve(content, actions={})
    small = simulate(bare, players=6, seed=3)
    pacing = small.pacing()
    assert pacing["first_action_seconds"]["never"] == 6
    assert max(v["longest_gap_seconds"]["max"] for v in pacing["stages"].values()) > TARGETS.longest_gap_seconds
    failed = {t["target"] for t in small.targets() if not t["pass"]}
    assert any("something to do" in t for t in failed)
    assert any("every 30 s" in t for t in failed)
    assert "**FAIL**" in small.markdown()


def test_birthdays_are_counted_once_each_however_many_days_a_step_runs(content: Content) -> None:
    """24 days a year: a step runs up to a year or more, and each birthday of
    working age still counts once (no `day % year_days` test on the step's day)."""
    small = simulate(content, players=12, seed=4, year_days=24)
    for life in small.lives:
        # Birthdays lived: those before the day of death (a life that ends on a birthday does not count it).
        whole = math.ceil(life.years) - 1
        expected = max(0, min(whole, WORKING_AGE[1] - 1) - WORKING_AGE[0] + 1)
        assert sum(life.job_years.values()) == expected, life
        assert life.adult_years == max(0, whole - ADULT_AGE + 1)
        assert (life.money_at_65 is not None) == (whole >= 65)


def test_real_time_adds_up(report: BalanceReport) -> None:
    for life in report.lives:
        assert sum(life.stage_seconds.values()) == life.seconds
        assert all(0 <= gap <= life.stage_seconds[stage] for stage, gap in life.stage_gaps.items())
        if life.first_prompt is not None:
            assert 1 <= life.first_prompt <= life.seconds
    assert sum(sum(life.stage_prompts.values()) for life in report.lives) == report.prompts_opened


def test_repeats_count_events_again_within_a_life(report: BalanceReport) -> None:
    rows = report.repeats()
    assert rows and rows == sorted(rows, key=lambda r: -r["repeats_per_life"])
    for row in rows:
        r = report.event_repeats[row["event"]]
        assert report.event_counts[row["event"]] == r.lives + r.repeats  # every happening counted once
        assert row["most_in_a_life"] >= 2
    assert report.to_dict()["repeats"] == rows


# ----------------------------------------------------------------- split and progress


def test_the_parallel_split_gives_the_same_report_as_one_process(content: Content) -> None:
    players = LIVES_PER_WORLD + 7  # two worlds, the second one partial

    def run(workers: int) -> dict[str, object]:
        d = simulate(content, players=players, seed=9, year_days=24, workers=workers).to_dict()
        d.pop("seconds")
        return d

    one, two = run(1), run(2)
    assert one["lives"] == players
    assert one == two


def test_progress_is_plain_lines_off_a_terminal() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(out, tty=False, clock=lambda: now[0])
    progress(0, 1000)
    for done in range(50, 1001, 50):
        now[0] += 1.0
        progress(done, 1000)
    progress.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # The first, then one per LINE_EVERY_SECONDS (the last one at the end).
    assert LINE_EVERY_SECONDS == 10
    assert len(lines) == 3
    assert lines[-1].startswith("simulate: 1,000/1,000 lives  50.0 lives/s  elapsed 0:20  ETA 0:00")
    assert "ETA 0:10" in lines[1]  # 500 done at 50 a second: 10 s left


def test_progress_is_one_bar_on_a_terminal() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(out, tty=True, clock=lambda: now[0])
    for done in (0, 250, 500, 1000):
        now[0] += 60.0
        progress(done, 1000)
    progress.close()
    text = out.getvalue()
    assert text.count("\r[") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "[" + "#" * 15 + "." * 15 + "] 500/1,000 lives" in text
    assert "ETA 3:00" in text.split("\r")[3]  # 500 lives in 180 s: 180 s for the other 500


def test_cli_progress_goes_to_stderr_unless_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", "--players", "3", "--seed", "1", "--year-days", "12", "--json", "--workers", "1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1].startswith("simulate: 3/3 lives")
    assert captured.out.startswith("{")
    assert main([*args, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
