"""The balance report of a simulation: distributions and counters, as data,
as a JSON-ready dict and as Markdown."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs

__all__ = ["BalanceReport", "LifeRecord", "quantiles"]

# Years counted as working age in the job distribution.
WORKING_AGE = (18, 65)


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


@attrs.frozen
class BalanceReport:
    """Everything ``baolife simulate`` prints. Build it with :meth:`build`."""

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
    prompts_opened: int
    prompts_answered: int
    prompts_expired: int
    actions_taken: dict[str, int]
    actions_refused: int

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

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        n = max(1, len(self.lives))
        spans = self.lifespans()
        money = sorted(life.money for life in self.lives)
        money65 = sorted(life.money_at_65 for life in self.lives if life.money_at_65 is not None)
        job_years = self.job_years()
        worked = max(1, sum(job_years.values()))
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
            out.append(f"| {job} | {share:.1%} | {held.get(job, 0):.1%} |" if job != "unemployed" else
                       f"| *unemployed* | {share:.1%} | |")
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
        out += [f"| {e} | {self.event_counts.get(e, 0):,} | {self.event_counts.get(e, 0) * 1000 / max(1, n):.1f} |"
                for e in rare]
        out += ["", "Most frequent:", "", "| event | times | per life |", "|---|---:|---:|"]
        for e, c in list(d["events_fired"].items())[:10]:
            out.append(f"| {e} | {c:,} | {c / max(1, n):.2f} |")
        out += ["", "## Actions", "", f"Refused (not possible at that moment): {self.actions_refused:,}.", "",
                "| action | times | per life |", "|---|---:|---:|"]
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


def _decades(spans: Sequence[float]) -> dict[str, int]:
    counts = Counter(min(int(y // 10), 11) for y in spans)
    return {(f"{10 * d}-{10 * d + 9}" if d < 11 else "110+"): counts[d] for d in range(12) if counts[d] or d < 11}


def _shares(counts: Counter[str], total: int) -> dict[str, float]:
    return {k: round(v / total, 5) for k, v in counts.most_common()}
