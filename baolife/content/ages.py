"""Content that obeys its own rules about age: who can be given what, when.

An event (or action) can happen only in its *age window*: its ``when``
min_age..max_age intersected with the age ranges of its ``stages`` (all
stages when none are listed). The checks here compare windows:

- an effect may give a job, an education level, a major or a flag only if
  every age the event can happen at lies inside the job's / level's /
  major's own ``when`` window (a flag: at or above its ``min_age``);
- ``job = "best"`` needs some job that can be had at the event's ages;
- an event's window is not empty, and an event in a stage file
  (``events/teen.toml``) stays inside that stage;
- a repeatable random event (not ``once``, not a ``followup``) has a
  ``cooldown_days``, so a prompt does not come back again and again.

They use ages only, not the other conditions (a flag, a job), so a window
is what the author wrote, not what play makes likely. :func:`problems`
returns every problem found, each naming the file, the id, the choice or
outcome, and the reason.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .schema import NO_AGE_LIMIT, Conditions, Content, Effects, Event, Outcome

__all__ = ["STAGE_FILES", "Window", "problems", "window"]

# [low, high): ages in game years, high exclusive (as in Conditions).
Window = tuple[float, float]

# Event files that hold one life stage's events, by file name.
STAGE_FILES = {
    "baby.toml": "baby",
    "childhood.toml": "child",
    "teen.toml": "teen",
    "young_adult.toml": "young_adult",
    "adulthood.toml": "adult",
    "senior.toml": "senior",
}


def stage_spans(content: Content) -> dict[str, Window]:
    """Each stage's ages, from its first age to the next stage's."""
    order = content.stage_order
    starts = [content.world.stages[s] for s in order]
    ends = starts[1:] + [NO_AGE_LIMIT]
    return {stage: (start, end) for stage, start, end in zip(order, starts, ends, strict=True)}


def window(cond: Conditions, spans: dict[str, Window]) -> Window | None:
    """The ages at which ``cond``'s age and stage conditions can hold together
    (the span from the youngest to the oldest such age), or None if never."""
    low = high = None
    for stage, (start, end) in spans.items():
        if cond.stages and stage not in cond.stages:
            continue
        lo, hi = max(cond.min_age, start), min(cond.max_age, end)
        if lo < hi:
            low = lo if low is None else min(low, lo)
            high = hi if high is None else max(high, hi)
    return None if low is None or high is None else (low, high)


def _inside(inner: Window, outer: Window | None) -> bool:
    return outer is not None and outer[0] <= inner[0] and inner[1] <= outer[1]


def _ages(win: Window | None) -> str:
    if win is None:
        return "no age"
    low, high = win
    return f"ages {low:g}+" if high >= NO_AGE_LIMIT else f"ages {low:g}-{high:g}"


class _AgeChecker:
    def __init__(self, content: Content) -> None:
        self.c = content
        self.spans = stage_spans(content)
        self.found: list[str] = []
        self.job_windows = {j.id: window(j.when, self.spans) for j in content.jobs.values()}

    def run(self) -> list[str]:
        for ev in self.c.events.values():
            self.event(ev)
        for act in self.c.actions.values():
            where = f"{act.source}: action {act.id!r}"
            win = window(act.when, self.spans)
            if win is None:
                self.found.append(f"{where}: its stages and ages never overlap, so it can never be taken")
                continue
            self.all_effects(act.effects, act.outcomes, win, where)
        return self.found

    def event(self, ev: Event) -> None:
        where = f"{ev.source}: event {ev.id!r}"
        win = window(ev.when, self.spans)
        if win is None:
            self.found.append(f"{where}: its stages and ages never overlap, so it can never happen")
            return
        stage = STAGE_FILES.get(PurePosixPath(ev.source).name)
        if stage in self.spans and not _inside(win, self.spans[stage]):
            self.found.append(
                f"{where}: can happen at {_ages(win)}, outside its file's stage {stage!r} "
                f"({_ages(self.spans[stage])}); set when.stages or its ages"
            )
        if not ev.once and not ev.followup and ev.cooldown_days <= 0:
            self.found.append(f"{where}: a repeatable event needs cooldown_days (or once = true)")
        self.all_effects(ev.effects, ev.outcomes, win, where)
        for ch in ev.choices:
            self.all_effects(ch.effects, ch.outcomes, win, f"{where}: choice {ch.key!r}")

    def all_effects(self, eff: Effects, outcomes: tuple[Outcome, ...], win: Window, where: str) -> None:
        self.effects(eff, win, where)
        for i, out in enumerate(outcomes):
            self.effects(out.effects, win, f"{where}: outcome #{i + 1}")

    def effects(self, eff: Effects, win: Window, where: str) -> None:
        c = self.c
        at = _ages(win)
        if eff.job == "best":
            if not any(w and w[0] < win[1] and win[0] < w[1] for w in self.job_windows.values()):
                self.found.append(f"{where}: job 'best' at {at}, but no job can be had at those ages")
        elif eff.job in c.jobs:
            need = self.job_windows[eff.job]
            if not _inside(win, need):
                title = c.jobs[eff.job].title
                self.found.append(f"{where}: gives job {eff.job!r} ({title}) at {at}, but it needs {_ages(need)}")
        level = c.levels.get(eff.education)
        if level is not None:
            need = window(level.when, self.spans)
            if not _inside(win, need):
                self.found.append(f"{where}: starts education {level.id!r} at {at}, but it needs {_ages(need)}")
        major = c.majors.get(eff.major)
        if major is not None:
            need = window(major.when, self.spans)
            level = c.levels.get(major.level)
            if need is not None and level is not None:
                lw = window(level.when, self.spans)
                need = None if lw is None or lw[0] >= need[1] or need[0] >= lw[1] else _meet(need, lw)
            if not _inside(win, need):
                self.found.append(f"{where}: gives major {major.id!r} at {at}, but it needs {_ages(need)}")
        for flag_id in eff.flags_add:
            flag = c.flags.get(flag_id)
            if flag is not None and win[0] < flag.min_age:
                self.found.append(
                    f"{where}: gives {flag.kind} {flag.id!r} at {at}, but it needs ages {flag.min_age:g}+"
                )


def _meet(a: Window, b: Window) -> Window:
    return max(a[0], b[0]), min(a[1], b[1])


def problems(content: Content) -> list[str]:
    """Every age rule the content breaks, one line each (empty: none)."""
    return _AgeChecker(content).run()
