"""Pacing: how many game days one step of a player runs, when random-event
checks come, and which days of a life can be skipped in bulk.

A *step* is one player day boundary (``day_ticks`` ticks). At each step the
engine runs the stage's pace (content: ``[world.pace.<stage>]``) times the
player's fast-forward factor in game days, one while a prompt waits. Most of
those days are quiet: no check, no birthday, no school start or end, no
prompt expiry, no follow-up due. Only money and the chance of death move on
them, and both have closed forms over a span of days, so the engine runs a
quiet span in one go and only the busy days in full (the idea of Evennia's
on-demand timers: compute what happened when it matters, not every tick).

Pure functions of their inputs; the random generator is passed in.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right

from .. import protocol as wire
from ..content.schema import NO_AGE_LIMIT, Content
from ..model import Player

__all__ = ["Pacing", "death_after", "death_day", "share_between"]


class Pacing:
    """The pace tables of one content pack at one calendar (``year_days``)."""

    def __init__(self, content: Content, *, year_days: int) -> None:
        w = content.world
        order = content.stage_order
        self.year_days = year_days
        self.max_step_days = w.max_step_days
        # Without a pace table: one day per step and the global check gap.
        self._days = {s: w.pace[s].days if w.pace else 1 for s in order}
        self._gaps = {s: w.pace[s].check_days if w.pace else (w.check_min_days, w.check_max_days) for s in order}
        self._first_check = w.first_check_days
        self._first_stage = order[0]
        # Days on which something changes besides money and the death roll,
        # whatever the player does: stage starts (expenses and pace change)
        # and automatic school starts. Mirrors Rules.stage and Rules.education_day.
        stage_starts = {math.ceil(w.stages[s] * year_days) for s in order[1:]}
        auto_starts = {round(lv.auto_age * year_days) for lv in content.levels.values() if lv.auto_age is not None}
        # Days an action's age bound is crossed: the action list changes then.
        self.action_days = frozenset(
            math.ceil(bound * year_days)
            for a in content.actions.values()
            for bound in (a.when.min_age, a.when.max_age)
            if 0 < bound < NO_AGE_LIMIT
        )
        self._fixed_days = sorted(stage_starts | auto_starts | self.action_days)
        self._level_days = {lv.id: round(lv.years * year_days) for lv in content.levels.values()}
        # Days per step by fast-forward factor and stage, for the factors a player may choose.
        self._steps = {speed: {s: self._capped(s, speed) for s in order} for speed in wire.SPEEDS}

    def stage_days(self, stage: str) -> int:
        """The content's game days per step for ``stage`` (at speed 1)."""
        return self._days[stage]

    def days(self, stage: str, speed: int) -> int:
        """Game days per step in ``stage`` at fast-forward factor ``speed``,
        within 1..max_step_days."""
        table = self._steps.get(speed)
        return table[stage] if table is not None else self._capped(stage, speed)

    def _capped(self, stage: str, speed: int) -> int:
        return max(1, min(self._days[stage] * speed, self.max_step_days))

    def check_gap(self, stage: str, rng: random.Random) -> int:
        """Days from a random-event check in ``stage`` to the next one."""
        low, high = self._gaps[stage]
        return rng.randint(low, high)

    def first_check(self, rng: random.Random) -> int:
        """The day of a newborn's first random-event check."""
        return self._first_check or self.check_gap(self._first_stage, rng)

    def next_busy_day(self, p: Player) -> int:
        """The first day after ``p.age_days`` that must be run in full: a
        random-event check, a birthday, a stage start, a school start or end,
        an action's age bound,
        a prompt expiry, a follow-up due, or (health at 0) death. The days
        before it are quiet: only money and the chance of death move."""
        day = p.age_days
        if p.stats.health <= 0:
            return day + 1
        # Plain comparisons: this runs at every step of every player.
        yd = self.year_days
        busy = (day // yd + 1) * yd
        if p.next_check < busy:
            busy = p.next_check
        for item in p.scheduled:
            if item.day < busy:
                busy = item.day
        for prompt in p.prompts:
            if prompt.expires_day < busy:
                busy = prompt.expires_day
        length = self._level_days.get(p.education)
        if length is not None and p.edu_since + length < busy:
            busy = p.edu_since + length
        fixed = self._fixed_days
        i = bisect_right(fixed, day)
        if i < len(fixed) and fixed[i] < busy:
            busy = fixed[i]
        return busy if busy > day else day + 1


def share_between(yearly: int, since: int, first: int, last: int, year_days: int) -> int:
    """The sum of ``Rules.day_share(yearly, since, d)`` over the days
    ``first + 1 .. last``: the daily shares telescope to two floor divisions."""
    return (yearly * (last - since)) // year_days - (yearly * (first - since)) // year_days


def death_day(chance: float, days: int, rng: random.Random) -> int | None:
    """With a daily death chance ``chance``, the day (1..``days``) of a span
    on which death comes, or None: the same law as one roll a day, from one
    roll (the span's chance is ``1 - (1 - chance) ** days``, the day geometric)."""
    if chance <= 0.0 or days <= 0:
        return None
    if chance >= 1.0:
        return 1
    survive = 1.0 - rng.random()  # in (0, 1]
    if survive <= (1.0 - chance) ** days:
        return None  # the common case, without logarithms
    return death_after(survive, chance, days)


def death_after(survive: float, chance: float, days: int) -> int:
    """The day of :func:`death_day` whose roll ``survive`` (in (0, 1]) was
    above the span's chance of living through it, ``(1 - chance) ** days``,
    with ``0 < chance < 1``: death by day k has chance ``1 - (1 - chance) **
    k``, inverted."""
    k = math.floor(math.log(survive) / math.log1p(-chance)) + 1
    return min(k, days)  # k > days only by rounding at the edge
