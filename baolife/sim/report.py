"""The balance report of a simulation: distributions and counters, as data,
as a JSON-ready dict and as Markdown.

One piece: one report in three forms (data, JSON and Markdown) that must say
the same thing line for line, so they are kept side by side.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = ["ADULT_AGE", "TARGETS", "BalanceReport", "EventRepeats", "LifeRecord", "Targets", "quantiles"]

# Years counted as working age in the job distribution.
WORKING_AGE = (18, 65)
# Before this age (years) a life must never be in debt; adult years are counted from it.
ADULT_AGE = 18


@attrs.frozen
class Targets:
    """The pacing and money targets of issue 17, at the server's defaults
    (one tick of the simulation is one real second)."""

    # p95 over lives of the real seconds from birth to the first prompt.
    first_choice_seconds: int = 30
    # p95 over lives of the real seconds to the first action that can be taken.
    something_to_do_seconds: int = 120
    # p95 over lives, in every stage, of the longest stretch with neither a
    # pending prompt nor an action to take.
    longest_gap_seconds: int = 30
    # The median life, in real hours of play.
    median_life_hours: tuple[float, float] = (1.0, 2.0)


TARGETS = Targets()


@attrs.frozen
class EventRepeats:
    """How one event repeats within lives: lives it happened in, times it
    happened again in the same life (all lives), and the most in one life."""

    lives: int
    repeats: int
    most: int

    def add(self, times: int) -> EventRepeats:
        """With one more life in which the event happened ``times`` times."""
        return EventRepeats(self.lives + 1, self.repeats + times - 1, max(self.most, times))

    def merge(self, other: EventRepeats) -> EventRepeats:
        return EventRepeats(self.lives + other.lives, self.repeats + other.repeats, max(self.most, other.most))


@attrs.frozen
class LifeRecord:
    """One finished (or cut-off) simulated life."""

    years: float
    cause: str
    money: int
    money_at_65: int | None
    education: str
    major: str
    # Job (or "unemployed") held on each birthday of working age.
    job_years: dict[str, int]
    finished: bool = True
    # Real seconds (ticks) of play the life took, and to its first prompt and
    # to the first tick with an action it could take (None: never).
    seconds: int = 0
    first_prompt: int | None = None
    first_action: int | None = None
    # Per life stage: real seconds, prompts opened, actions taken by the bot,
    # and the longest run of seconds with neither a prompt nor an action.
    stage_seconds: dict[str, int] = attrs.Factory(dict)
    stage_prompts: dict[str, int] = attrs.Factory(dict)
    stage_actions: dict[str, int] = attrs.Factory(dict)
    stage_gaps: dict[str, int] = attrs.Factory(dict)
    # Birthdays from ADULT_AGE on, and those with money below zero; real
    # seconds with money below zero; any debt before ADULT_AGE.
    adult_years: int = 0
    debt_years: int = 0
    debt_seconds: int = 0
    minor_debt: bool = False


@attrs.frozen
class BalanceReport:
    """Everything ``baolife simulate`` prints (made by :func:`baolife.sim.simulate`)."""

    command: str
    seed: int
    year_days: int
    policy: str
    seconds: float
    lives: tuple[LifeRecord, ...]
    player_days: int
    checks: int
    evaluations: int
    indexed_events: int
    random_events: tuple[str, ...]
    followup_events: tuple[str, ...]
    event_counts: dict[str, int]
    event_repeats: dict[str, EventRepeats]
    prompts_opened: int
    prompts_answered: int
    prompts_expired: int
    actions_taken: dict[str, int]
    actions_refused: int
    # The content's life stages, in order (for the per-stage tables).
    stages: tuple[str, ...] = ()

    # ----------------------------------------------------------------- figures

    @property
    def unfinished(self) -> int:
        """Lives cut off at the simulation's age limit (should be 0)."""
        return sum(1 for life in self.lives if not life.finished)

    @property
    def evaluations_per_player_day(self) -> float:
        return self.evaluations / max(1, self.player_days)

    @property
    def registry_share(self) -> float:
        """Mean events evaluated per player-day as a share of the indexed events."""
        return self.evaluations_per_player_day / max(1, self.indexed_events)

    @property
    def never_fired(self) -> list[str]:
        """Events (random and follow-up) that happened in none of the lives."""
        return sorted(e for e in self.random_events + self.followup_events if not self.event_counts.get(e))

    def lifespans(self) -> list[float]:
        return sorted(life.years for life in self.lives)

    def education(self) -> Counter[str]:
        return Counter(life.education for life in self.lives)

    def majors(self) -> Counter[str]:
        return Counter(life.major for life in self.lives if life.major)

    def job_years(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for life in self.lives:
            total.update(life.job_years)
        return total

    def jobs_held(self) -> Counter[str]:
        """Lives that held each job on at least one birthday of working age."""
        held: Counter[str] = Counter()
        for life in self.lives:
            held.update(job for job in life.job_years if job != "unemployed")
        return held

    def pacing(self) -> dict[str, Any]:
        """Pacing in real time (one tick is one real second of play)."""
        lives = self.lives
        firsts = sorted(life.first_prompt for life in lives if life.first_prompt is not None)
        actions = sorted(life.first_action for life in lives if life.first_action is not None)
        stages: dict[str, Any] = {}
        for stage in self.stages:
            seen = [life for life in lives if stage in life.stage_seconds]
            hours = sum(life.stage_seconds[stage] for life in seen) / 3600
            gaps = sorted(life.stage_gaps.get(stage, 0) for life in seen)
            p50, p95 = quantiles(gaps, (0.5, 0.95))
            stages[stage] = {
                "lives": len(seen),
                "real_hours_per_life": round(hours / max(1, len(seen)), 4),
                "prompts_per_hour": round(sum(life.stage_prompts.get(stage, 0) for life in seen) / hours, 2)
                if hours
                else 0.0,
                "actions_per_hour": round(sum(life.stage_actions.get(stage, 0) for life in seen) / hours, 2)
                if hours
                else 0.0,
                "longest_gap_seconds": {"median": p50, "p95": p95, "max": gaps[-1] if gaps else 0},
            }
        return {
            "first_choice_seconds": _short(firsts, len(lives)),
            "first_action_seconds": _short(actions, len(lives)),
            "life_hours": _short(sorted(life.seconds / 3600 for life in lives), len(lives)),
            "stages": stages,
        }

    def repeats(self, top: int = 15) -> list[dict[str, Any]]:
        """The events that repeat most within a life: mean repeats per life
        (times beyond the first, over all lives) and the most in one life."""
        n = max(1, len(self.lives))
        rows: list[dict[str, Any]] = [
            {"event": e, "repeats_per_life": round(r.repeats / n, 3), "most_in_a_life": r.most, "lives": r.lives}
            for e, r in self.event_repeats.items()
        ]
        rows.sort(key=lambda row: (-row["repeats_per_life"], -row["most_in_a_life"], row["event"]))
        return rows[:top]

    def debt(self) -> dict[str, Any]:
        """Time spent in debt."""
        lives = self.lives
        adult = sum(life.adult_years for life in lives)
        return {
            "adult_years_in_debt_share": round(sum(life.debt_years for life in lives) / max(1, adult), 5),
            "lives_ever_in_debt_share": round(sum(1 for life in lives if life.debt_seconds) / max(1, len(lives)), 5),
            "lives_in_debt_before_adult_age": sum(1 for life in lives if life.minor_debt),
            "adult_age": ADULT_AGE,
        }

    def targets(self, pacing: dict[str, Any] | None = None, debt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Issue 17's targets, each with the figure measured and whether it passes."""
        t = TARGETS
        pacing = pacing or self.pacing()
        debt = debt or self.debt()
        low, high = t.median_life_hours
        first = _p95_of_all(pacing["first_choice_seconds"])
        action = _p95_of_all(pacing["first_action_seconds"])
        gaps = {s: v["longest_gap_seconds"]["p95"] for s, v in pacing["stages"].items()}
        worst = max(gaps.items(), key=lambda kv: kv[1], default=("-", 0.0))
        median = pacing["life_hours"]["median"]
        minors = debt["lives_in_debt_before_adult_age"]
        return [
            {"target": f"first choice within {t.first_choice_seconds} s (p95)", "measured": _seconds(first),
             "pass": first <= t.first_choice_seconds},
            {"target": f"something to do within {t.something_to_do_seconds} s (p95)", "measured": _seconds(action),
             "pass": action <= t.something_to_do_seconds},
            {"target": f"a prompt or action at least every {t.longest_gap_seconds} s in every stage "
                       "(p95 of the longest gap)", "measured": f"{worst[1]:.0f} s ({worst[0]})",
             "pass": all(g <= t.longest_gap_seconds for g in gaps.values())},
            {"target": f"median life {low:g}-{high:g} h of play", "measured": f"{median:.2f} h",
             "pass": low <= median <= high},
            {"target": f"no debt before {ADULT_AGE}", "measured": f"{minors} lives", "pass": minors == 0},
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        n = max(1, len(self.lives))
        spans = self.lifespans()
        money = sorted(life.money for life in self.lives)
        money65 = sorted(life.money_at_65 for life in self.lives if life.money_at_65 is not None)
        job_years = self.job_years()
        worked = max(1, sum(job_years.values()))
        pacing, debt = self.pacing(), self.debt()
        return {
            "command": self.command,
            "seed": self.seed,
            "lives": len(self.lives),
            "unfinished_lives": self.unfinished,
            "year_days": self.year_days,
            "policy": self.policy,
            "seconds": round(self.seconds, 1),
            "player_days": self.player_days,
            "lifespan_years": _summary(spans),
            "lifespan_by_decade": _decades(spans),
            "causes_of_death": dict(Counter(life.cause for life in self.lives).most_common()),
            "money_at_death": _summary(money),
            "money_at_65": _summary(money65),
            "education": _shares(self.education(), n),
            "majors": _shares(self.majors(), n),
            "jobs_share_of_working_years": _shares(job_years, worked),
            "jobs_held_share_of_lives": _shares(self.jobs_held(), n),
            "events_fired": dict(sorted(self.event_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "events_never_fired": self.never_fired,
            "prompts": {
                "opened": self.prompts_opened,
                "answered": self.prompts_answered,
                "expired": self.prompts_expired,
            },
            "actions_taken": dict(sorted(self.actions_taken.items(), key=lambda kv: (-kv[1], kv[0]))),
            "actions_refused": self.actions_refused,
            "targets": self.targets(pacing, debt),
            "pacing": pacing,
            "repeats": self.repeats(),
            "debt": debt,
            "engine": {
                "checks_per_player_day": round(self.checks / max(1, self.player_days), 5),
                "evaluations_per_player_day": round(self.evaluations_per_player_day, 5),
                "indexed_events": self.indexed_events,
                "share_of_registry": round(self.registry_share, 5),
            },
        }

    def markdown(self) -> str:
        """The report as Markdown (what docs/BALANCE.md holds)."""
        d = self.to_dict()
        n = len(self.lives)
        ls = d["lifespan_years"]
        out = [
            "# Balance report",
            "",
            f"`{self.command}`: {n:,} lives, {self.player_days:,} player-days of {self.year_days} days a year, "
            f"in {self.seconds:,.0f} s.",
            "",
            f"Policy: {self.policy}.",
            "",
            *self._markdown_time(d),
            "## Lifespan",
            "",
            f"Median **{ls['median']:.1f}** years (mean {ls['mean']:.1f}; "
            f"10th-90th percentile {ls['p10']:.1f}-{ls['p90']:.1f}; min {ls['min']:.1f}, max {ls['max']:.1f}). "
            f"Lives cut off unfinished: {self.unfinished}.",
            "",
            "| age | lives | share |",
            "|---|---:|---:|",
        ]
        for decade, count in d["lifespan_by_decade"].items():
            out.append(f"| {decade} | {count:,} | {count / max(1, n):.1%} |")
        out += ["", "| cause of death | lives | share |", "|---|---:|---:|"]
        for cause, count in d["causes_of_death"].items():
            out.append(f"| {cause} | {count:,} | {count / max(1, n):.1%} |")
        out += ["", "## Money", "", "| | p10 | p25 | median | p75 | p90 | mean |", "|---|" + "---:|" * 6]
        for label, key in (("at death", "money_at_death"), ("at 65", "money_at_65")):
            s = d[key]
            if s["count"]:
                cells = " | ".join(f"{s[q]:,.0f}" for q in ("p10", "p25", "median", "p75", "p90", "mean"))
                out.append(f"| {label} | {cells} |")
        out += ["", "## Education", "", "Highest level at death:", "", "| education | share of lives |", "|---|---:|"]
        out += [f"| {k} | {v:.1%} |" for k, v in d["education"].items()]
        out += ["", "University majors:", "", "| major | share of lives |", "|---|---:|"]
        out += [f"| {k} | {v:.1%} |" for k, v in d["majors"].items()]
        out += [
            "",
            "## Jobs",
            "",
            f"On each birthday from {WORKING_AGE[0]} to {WORKING_AGE[1] - 1}: the job held.",
            "",
            "| job | share of working-age years | lives that held it |",
            "|---|---:|---:|",
        ]
        held = d["jobs_held_share_of_lives"]
        for job, share in d["jobs_share_of_working_years"].items():
            out.append(
                f"| {job} | {share:.1%} | {held.get(job, 0):.1%} |"
                if job != "unemployed"
                else f"| *unemployed* | {share:.1%} | |"
            )
        never = d["events_never_fired"]
        fired = sum(self.event_counts.values())
        p = d["prompts"]
        out += [
            "",
            "## Events",
            "",
            f"{fired:,} events happened ({fired / max(1, n):.1f} per life). Prompts: {p['opened']:,} opened, "
            f"{p['answered']:,} answered, {p['expired']:,} ran out to their default.",
            "",
            f"Never fired in {n:,} lives: " + (", ".join(f"`{e}`" for e in never) if never else "none") + ".",
            "",
            "Least frequent:",
            "",
            "| event | times | per 1,000 lives |",
            "|---|---:|---:|",
        ]
        rare = sorted(self.random_events + self.followup_events, key=lambda e: (self.event_counts.get(e, 0), e))[:15]
        out += [
            f"| {e} | {self.event_counts.get(e, 0):,} | {self.event_counts.get(e, 0) * 1000 / max(1, n):.1f} |"
            for e in rare
        ]
        out += ["", "Most frequent:", "", "| event | times | per life |", "|---|---:|---:|"]
        for e, c in list(d["events_fired"].items())[:10]:
            out.append(f"| {e} | {c:,} | {c / max(1, n):.2f} |")
        out += [
            "",
            "## Actions",
            "",
            f"Refused (not possible at that moment): {self.actions_refused:,}.",
            "",
            "| action | times | per life |",
            "|---|---:|---:|",
        ]
        out += [f"| {a} | {c:,} | {c / max(1, n):.1f} |" for a, c in d["actions_taken"].items()]
        e = d["engine"]
        out += [
            "",
            "## Cost of the event registry",
            "",
            f"Random-event checks per player-day: {e['checks_per_player_day']:.4f}. Candidate events evaluated "
            f"per player-day: {e['evaluations_per_player_day']:.4f}, out of {e['indexed_events']} indexed events: "
            f"**{e['share_of_registry']:.2%}** of the registry (target: at most 15%).",
            "",
        ]
        return "\n".join(out)

    def _markdown_time(self, d: dict[str, Any]) -> list[str]:
        """The targets, pacing, repeats and debt sections."""
        out = [
            "## Targets",
            "",
            "One tick of the simulation is one real second of play (a step of the "
            "player's clock at the server's defaults).",
            "",
            "| target | measured | |",
            "|---|---:|---|",
        ]
        out += [f"| {t['target']} | {t['measured']} | {'pass' if t['pass'] else '**FAIL**'} |" for t in d["targets"]]
        pc = d["pacing"]
        out += ["", "## Pacing (real time)", ""]
        for label, key, unit in (
            ("First choice (first prompt opened)", "first_choice_seconds", "s"),
            ("First action available", "first_action_seconds", "s"),
            ("Length of a life", "life_hours", "h"),
        ):
            q = pc[key]
            out.append(
                f"- {label}: median {q['median']:,.2f} {unit}, p95 {q['p95']:,.2f} {unit}, "
                f"max {q['max']:,.2f} {unit} ({q['count']:,} lives; never: {q['never']:,})."
            )
        out += [
            "",
            "| stage | lives | real hours per life | prompts per hour | actions per hour "
            "| longest gap: median | p95 | max |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for stage, v in pc["stages"].items():
            g = v["longest_gap_seconds"]
            out.append(
                f"| {stage} | {v['lives']:,} | {v['real_hours_per_life']:.2f} | {v['prompts_per_hour']:.1f} "
                f"| {v['actions_per_hour']:.1f} | {g['median']:.0f} s | {g['p95']:.0f} s | {g['max']:.0f} s |"
            )
        out += [
            "",
            "Actions per hour are the bots' (see the policy); a gap is a run of seconds with neither a "
            "pending prompt nor an action the player could take (allowed, not cooling down, paid for).",
            "",
            "## Repeats",
            "",
            "Events that happen again within a life, by mean repeats per life (times beyond "
            "the first, over all lives):",
            "",
            "| event | repeats per life | most in one life | lives |",
            "|---|---:|---:|---:|",
        ]
        out += [
            f"| {r['event']} | {r['repeats_per_life']:.2f} | {r['most_in_a_life']} | {r['lives']:,} |"
            for r in d["repeats"]
        ]
        db = d["debt"]
        out += ["", "## Debt", "",
                f"- Adult years (birthdays from {db['adult_age']}) with money below zero: "
                f"{db['adult_years_in_debt_share']:.2%}.",
                f"- Lives ever in debt: {db['lives_ever_in_debt_share']:.2%}.",
                f"- Lives in debt before {db['adult_age']}: {db['lives_in_debt_before_adult_age']:,} (target: 0).",
                ""]  # fmt: skip
        return out


def quantiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Linear-interpolated quantiles of sorted ``values`` (each q in 0..1)."""
    if not values:
        return [0.0 for _ in qs]
    out = []
    last = len(values) - 1
    for q in qs:
        pos = q * last
        low = int(pos)
        high = min(low + 1, last)
        out.append(values[low] + (values[high] - values[low]) * (pos - low))
    return out


def _summary(values: Sequence[float]) -> dict[str, float]:
    p10, p25, median, p75, p90 = quantiles(values, (0.1, 0.25, 0.5, 0.75, 0.9))
    return {
        "count": len(values),
        "mean": sum(values) / len(values) if values else 0.0,
        "min": values[0] if values else 0.0,
        "p10": p10,
        "p25": p25,
        "median": median,
        "p75": p75,
        "p90": p90,
        "max": values[-1] if values else 0.0,
    }


def _short(values: Sequence[float], lives: int) -> dict[str, float]:
    """Median, p95 and max of sorted ``values`` (one per life that has one);
    ``never``: lives without one."""
    p50, p95 = quantiles(values, (0.5, 0.95))
    return {
        "count": len(values),
        "never": lives - len(values),
        "median": round(p50, 4),
        "p95": round(p95, 4),
        "max": round(values[-1], 4) if values else 0.0,
    }


def _p95_of_all(q: dict[str, float]) -> float:
    """The p95 of a :func:`_short` summary over all lives: infinite when
    more than 5% of lives never had one (then the p95 life never did)."""
    return q["p95"] if q["never"] <= 0.05 * (q["count"] + q["never"]) else math.inf


def _seconds(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.0f} s"


def _decades(spans: Sequence[float]) -> dict[str, int]:
    counts = Counter(min(int(y // 10), 11) for y in spans)
    return {(f"{10 * d}-{10 * d + 9}" if d < 11 else "110+"): counts[d] for d in range(12) if counts[d] or d < 11}


def _shares(counts: Counter[str], total: int) -> dict[str, float]:
    return {k: round(v / total, 5) for k, v in counts.most_common()}
