"""The rules of a life: conditions, effects, birth, aging and death.

Plain synchronous code over :class:`~baolife.model.Player`; no I/O, no clock.
Every change a rule makes to a player goes through a :class:`Unit`, which
records it as ops for the client in the order it happened and collects
changed view fields into one ``state`` op when the unit closes.

One piece: every rule changes a player through the same Unit and draws from
the same random generator, in an order a seed replays; split by topic
(people, money, jobs, death) the rules would call each other across modules
at every step. What stands alone already lives beside it: family names, past
lives, the story, pacing.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from .. import protocol as wire
from ..content.schema import NO_AGE_LIMIT, Conditions, Content, Effects, Event, NpcAdd, Outcome
from ..model import LIMITS, MAX_AGE_YEARS, ONCE, STAT_MAX, STAT_MIN, STAT_NAMES, Npc, Player, Scheduled, Stats
from . import lives, story
from .family import FAMILY_ROLES, life_surname, npc_name
from .pacing import Pacing, share_between

__all__ = ["Ledger", "Rules", "Unit", "ONCE", "PAID_BY_PARENTS"]


# ``paid_by`` of an outcome whose cost a minor's payers (parents) paid.
PAID_BY_PARENTS = "parents"

_UNSET: Any = object()


class Ledger:
    """What one action, prompt or event changed: the ``changes`` of its
    ``outcome`` op. Every change path of :class:`Rules` records into the
    unit's open ledger, so an outcome shows what really happened (a stat
    already at 100 gains nothing; a flag gained and lost again is neither)."""

    __slots__ = ("stats", "money", "paid_by", "npcs", "gained", "lost", "job", "education")

    def __init__(self) -> None:
        self.stats: dict[str, int] = {}
        self.money = 0
        self.paid_by = ""
        self.npcs: dict[int, list[Any]] = {}  # id -> [name, closeness delta]
        self.gained: list[str] = []
        self.lost: list[str] = []
        self.job: Any = _UNSET
        self.education = ""

    def stat(self, stat: str, delta: int) -> None:
        self.stats[stat] = self.stats.get(stat, 0) + delta

    def npc(self, npc: Npc, delta: int) -> None:
        entry = self.npcs.setdefault(npc.id, [npc.name, 0])
        entry[1] += delta

    def flag(self, flag: str, on: bool) -> None:
        undo, do = (self.lost, self.gained) if on else (self.gained, self.lost)
        if flag in undo:
            undo.remove(flag)
        else:
            do.append(flag)

    def wire(self) -> dict[str, Any]:
        """Only what changed (see ``outcome`` in PROTOCOL.md)."""
        out: dict[str, Any] = {}
        stats = {k: v for k, v in self.stats.items() if v}
        if stats:
            out["stats"] = stats
        if self.money:
            out["money"] = self.money
        if self.paid_by:
            out["paid_by"] = self.paid_by
        npcs = [{"id": i, "name": name, "closeness": d} for i, (name, d) in self.npcs.items() if d]
        if npcs:
            out["npcs"] = npcs
        if self.gained:
            out["gained"] = list(self.gained)
        if self.lost:
            out["lost"] = list(self.lost)
        if self.job is not _UNSET:
            out["job"] = self.job
        if self.education:
            out["education"] = self.education
        return out


class Unit:
    """The changes one piece of work (a command, a day) makes to one player.

    ``ops`` is the player's outbox list for this tick; :meth:`close` appends
    the ``state`` op of the changed view fields. ``start`` holds the stats
    and money as the unit began, so warnings fire once per crossing of a
    threshold without remembering anything between units. ``ledger`` is
    open (not None) while one action, prompt or event happens.
    """

    __slots__ = ("p", "ops", "changes", "stats", "refresh_actions", "start", "ledger", "flags_changed")

    def __init__(self, player: Player, ops: list[wire.Op]) -> None:
        self.p = player
        self.ops = ops
        self.changes: dict[str, Any] = {}
        self.stats: dict[str, int] = {}
        self.refresh_actions = False
        s = player.stats
        self.start = (s.health, s.happiness, s.smarts, s.looks, player.money)
        self.ledger: Ledger | None = None
        self.flags_changed = False

    def set(self, field: str, value: Any) -> None:
        self.changes[field] = value
        ledger = self.ledger
        if ledger is not None:
            # Job and schooling change through several rules; all of them set the view field.
            if field == "job":
                ledger.job = value["title"] if value else None
            elif field == "education":
                ledger.education = value

    def begin(self) -> Ledger:
        """Open the ledger of one action, prompt or event."""
        self.ledger = Ledger()
        return self.ledger

    def outcome(self, source: str, ident: Any, title: str, ref: Any = None) -> None:
        """Close the ledger into an ``outcome`` op, after the ops of its effects."""
        ledger, self.ledger = self.ledger, None
        changes = ledger.wire() if ledger is not None else {}
        self.ops.append(wire.Outcome(source=source, id=ident, title=title, changes=changes, ref=ref))

    def close(self) -> bool:
        """Emit the state op; True if anything changed."""
        if self.stats:
            self.changes["stats"] = self.stats
        if self.changes:
            self.ops.append(wire.State(self.changes))
            return True
        return False


class Rules:
    """The rules of one content pack at one calendar (``year_days``)."""

    def __init__(self, content: Content, *, year_days: int, rng: random.Random) -> None:
        self.content = content
        self.year_days = year_days
        self.rng = rng
        order = content.stage_order
        self._stage_names = order
        self._stage_starts = [content.world.stages[s] * year_days for s in order]
        self._expenses = {s: content.world.expenses.get(s, 0) for s in order}
        self._drift = {d.stage: d for d in content.world.drift}
        self.hazard = content.world.hazard
        # Days per step and between random-event checks, by stage (content's pace table).
        self.pacing = Pacing(content, year_days=year_days)
        money = content.world.money
        self._adult_days = round(money.adult_age * year_days)
        self._payers = frozenset(money.payers)
        self._debt_flag = money.debt_flag
        self._debt_text = money.debt_text
        # (index in Unit.start, stat, threshold) of the stats content warns about.
        warn = content.world.warnings
        self._warnings = [(i, stat, warn[stat]) for i, stat in enumerate(STAT_NAMES) if stat in warn]
        # Auto-enrolled education levels by the age (in days) they start.
        self._auto_levels = {
            round(lv.auto_age * year_days): lv for lv in content.levels.values() if lv.auto_age is not None
        }
        # Flags that act at each birthday, in content order (not set order, so a seed replays).
        self._yearly_flags = [(f.id, f.yearly) for f in content.flags.values() if f.yearly != Effects()]
        # Birthdays the story marks ("You turned N.").
        self._birthdays = frozenset(content.world.birthdays)
        # Day-indexed tables for the daily rules, up to an age no life reaches
        # (stage() and expenses() fall back to a search past it).
        self._table_days = MAX_AGE_YEARS * year_days
        self._stage_at = [self._stage_search(day) for day in range(self._table_days)]
        self._expense_at = [self._expenses[stage] for stage in self._stage_at]
        self._tax: dict[str | None, int] = {
            job.id: round(job.salary * content.world.tax) for job in content.jobs.values()
        }
        h = self.hazard
        # Daily death chance = age part (by whole year, taken at mid-year) x health part (+ infant).
        self._hazard_age = [h.base * math.exp(h.growth * (y + 0.5)) / year_days for y in range(MAX_AGE_YEARS + 1)]
        self._hazard_health = [math.exp(h.health_scale * (50 - hp)) for hp in range(STAT_MIN, STAT_MAX + 1)]
        self._infant = h.infant / year_days
        # Compiled conditions of the content, by id() of the Conditions object
        # (kept in the entry, so the id cannot be reused while it is here).
        # Only the content's are kept: the dict is bounded by the content.
        self._compiled: dict[int, tuple[Conditions, tuple[Callable[[Player], bool], ...]]] = {}
        # Their variants for an age span (checks_within), by (id, age kept, stage kept).
        self._compiled_within: dict[
            tuple[int, bool, bool], tuple[Conditions, tuple[Callable[[Player], bool], ...]]
        ] = {}
        for cond in content_conditions(content):
            self._compiled[id(cond)] = (cond, self._compile(cond))

    # ----------------------------------------------------------------- time

    def stage(self, age_days: int) -> str:
        """The life stage at ``age_days``."""
        if age_days < self._table_days:
            return self._stage_at[age_days]
        return self._stage_search(age_days)

    def _stage_search(self, age_days: int) -> str:
        return self._stage_names[bisect_right(self._stage_starts, age_days) - 1]

    def years(self, age_days: int) -> int:
        return age_days // self.year_days

    def day_share(self, yearly: int, since: int, day: int) -> int:
        """Day ``day``'s part of a yearly amount counted from day ``since``:
        whole units, and the sum over a year is exactly ``yearly``."""
        y = self.year_days
        return (yearly * (day - since)) // y - (yearly * (day - since - 1)) // y

    # ----------------------------------------------------------------- text

    def fields(self, p: Player, bind: dict[str, str] | None = None) -> dict[str, Any]:
        job = self.content.jobs.get(p.job or "")
        out: dict[str, Any] = {
            "name": p.name,
            "first": p.first_name,
            "surname": p.surname,
            "age": self.years(p.age_days),
            "job": job.title if job else "no job",
            "major": self.content.majors[p.major].label if p.major in self.content.majors else "no major",
            "money": p.money,
            "npc": "someone",
            "npc_role": "",
        }
        if bind:
            out.update(bind)
        return out

    def render(self, text: str, p: Player, bind: dict[str, str] | None = None) -> str:
        if "$" not in text:
            return text
        return self.content.template(text).safe_substitute(self.fields(p, bind))

    # ----------------------------------------------------------------- conditions

    def allows(self, cond: Conditions, p: Player) -> bool:
        """Whether ``cond`` holds for ``p``: the same answer as ``not
        why_not(cond, p)``, faster. Each Conditions is compiled once into
        checks of only the fields it sets; this runs for every candidate event
        of every check, and for every action when the action list changes."""
        for check in self.checks(cond):
            if not check(p):
                return False
        return True

    def checks(self, cond: Conditions) -> tuple[Callable[[Player], bool], ...]:
        """The compiled predicates of ``cond``: it holds when all of them do."""
        entry = self._compiled.get(id(cond))
        return entry[1] if entry is not None and entry[0] is cond else self._compile(cond)

    def checks_within(self, cond: Conditions, first: int, last: int | None) -> tuple[Callable[[Player], bool], ...]:
        """:meth:`checks` for players aged ``first`` to ``last`` days (None:
        no end): without the age bounds and the stage list where they hold on
        every one of those days, so they answer as :meth:`checks` does for
        such a player. The event registry keeps each event's checks by year
        of age this way: a random-event check then tests what can differ
        within the year, not the age band that put the event in that year's
        bucket (docs/BENCHMARKS.md, issue 15). At most four variants of a
        ``cond``, each compiled once."""
        age, stage = self._age_bounds(cond), bool(cond.stages)
        if age is not None:
            low_day, high_day = age
            if first >= low_day and (high_day is None or (last is not None and last < high_day)):
                age = None
        if stage:
            top = self._stage_names[-1] if last is None else self.stage(last)
            names = self._stage_names
            span = names[names.index(self.stage(first)) : names.index(top) + 1]
            stage = not all(s in cond.stages for s in span)
        key = (id(cond), age is not None, stage)
        entry = self._compiled_within.get(key)
        if entry is None or entry[0] is not cond:
            entry = (cond, self._compile(cond, age=age is not None, stage=stage))
            if self._compiled.get(id(cond), (None,))[0] is cond:
                # Bounded like _compiled: only the content's conditions are kept.
                self._compiled_within[key] = entry
        return entry[1]

    def _age_bounds(self, cond: Conditions) -> tuple[int, int | None] | None:
        """``cond``'s age band as days: ``low <= age_days`` and ``age_days <
        high`` (None: no upper bound); None when it sets no bound."""
        yd = self.year_days
        # ``age_days / yd >= years`` from the first such day on (found exactly).
        low_day = first_day(cond.min_age, yd) if cond.min_age > 0 else 0
        if cond.max_age < NO_AGE_LIMIT:
            return low_day, first_day(cond.max_age, yd)
        return (low_day, None) if low_day else None

    def _compile(
        self, cond: Conditions, *, age: bool = True, stage: bool = True
    ) -> tuple[Callable[[Player], bool], ...]:
        """Predicates for the fields ``cond`` sets, mirroring :meth:`why_not`
        (``age``, ``stage``: False leaves out the age bounds, the stage list)."""
        checks: list[Callable[[Player], bool]] = []
        # Age bounds as whole days compared as integers, one check for both.
        bounds = self._age_bounds(cond) if age else None
        if bounds is not None:
            low_day, high_day = bounds
            if high_day is not None:
                checks.append(lambda p: low_day <= p.age_days < high_day)
            else:
                checks.append(lambda p: p.age_days >= low_day)
        if cond.stages and stage:
            stages, stage_of = frozenset(cond.stages), self.stage
            checks.append(lambda p: stage_of(p.age_days) in stages)
        if cond.flags:
            flags = frozenset(cond.flags)
            checks.append(lambda p: flags <= p.flags)
        if cond.not_flags:
            not_flags = frozenset(cond.not_flags)
            checks.append(lambda p: p.flags.isdisjoint(not_flags))
        if cond.any_flags:
            any_flags = frozenset(cond.any_flags)
            checks.append(lambda p: not p.flags.isdisjoint(any_flags))
        if cond.has_job is not None:
            has_job = cond.has_job
            checks.append(lambda p: (p.job is not None) == has_job)
        if cond.jobs:
            jobs = frozenset(cond.jobs)
            checks.append(lambda p: p.job in jobs)
        if cond.education:
            education = frozenset(cond.education)
            checks.append(lambda p: p.education in education)
        if cond.not_education:
            not_education = frozenset(cond.not_education)
            checks.append(lambda p: p.education not in not_education)
        if cond.majors:
            majors = frozenset(cond.majors)
            checks.append(lambda p: p.major in majors)
        for stat, low in cond.min.items():
            checks.append(_stat_in(stat, low, STAT_MAX))
        for stat, high in cond.max.items():
            checks.append(_stat_in(stat, STAT_MIN, high))
        if cond.min_money is not None:
            min_money = cond.min_money
            checks.append(lambda p: p.money >= min_money)
        if cond.max_money is not None:
            max_money = cond.max_money
            checks.append(lambda p: p.money <= max_money)
        low = -1 if cond.min_closeness is None else cond.min_closeness
        high = 1 << 30 if cond.max_closeness is None else cond.max_closeness
        for role in cond.npc_roles:
            checks.append(_knows(role, low, high, True))
        for role in cond.not_npc_roles:
            checks.append(_knows(role, -1, 1 << 30, False))
        return tuple(checks)

    def why_not(self, cond: Conditions, p: Player) -> str:
        """Empty when ``cond`` holds for ``p``; otherwise a reason for a person."""
        years = p.age_days / self.year_days
        if years < cond.min_age:
            return f"you must be at least {cond.min_age:g}"
        if years >= cond.max_age:
            return f"you must be younger than {cond.max_age:g}"
        if cond.stages and self.stage(p.age_days) not in cond.stages:
            return "not at this stage of life"
        for flag in cond.flags:
            if flag not in p.flags:
                return f"needs {flag.replace('_', ' ')}"
        for flag in cond.not_flags:
            if flag in p.flags:
                return f"not when {flag.replace('_', ' ')}"
        if cond.any_flags and p.flags.isdisjoint(cond.any_flags):
            return "nothing here for you"
        if cond.has_job is not None and (p.job is not None) != cond.has_job:
            return "you need a job" if cond.has_job else "you already have a job"
        if cond.jobs and p.job not in cond.jobs:
            return "not in your job"
        if cond.education and p.education not in cond.education:
            return "needs " + " or ".join(e.replace("_", " ") for e in cond.education)
        if p.education in cond.not_education:
            return "not with your education"
        if cond.majors and p.major not in cond.majors:
            return "needs a degree in " + " or ".join(self.content.majors[m].label for m in cond.majors)
        stats = p.stats
        for stat, low in cond.min.items():
            if getattr(stats, stat) < low:
                return f"needs {stat} of at least {low}"
        for stat, high in cond.max.items():
            if getattr(stats, stat) > high:
                return f"needs {stat} of at most {high}"
        if cond.min_money is not None and p.money < cond.min_money:
            return f"needs at least {cond.min_money} money"
        if cond.max_money is not None and p.money > cond.max_money:
            return "you have too much money for that"
        for role in cond.npc_roles:
            if not self.npcs_of(p, role, cond.min_closeness, cond.max_closeness):
                return f"needs a {role.replace('_', ' ')}"
        for role in cond.not_npc_roles:
            if self.npcs_of(p, role):
                return f"not while you have a {role.replace('_', ' ')}"
        return ""

    @staticmethod
    def npcs_of(p: Player, role: str, min_closeness: int | None = None, max_closeness: int | None = None) -> list[Npc]:
        """The player's living NPCs of ``role`` within the closeness bounds."""
        low = -1 if min_closeness is None else min_closeness
        high = 1 << 30 if max_closeness is None else max_closeness
        return [n for n in p.npcs if n.alive and n.role == role and low <= n.closeness <= high]

    def holds(self, event: Event, p: Player, bind: dict[str, str] | None) -> bool:
        """Whether a scheduled follow-up still applies when it falls due: its
        conditions hold and, if it requires an NPC role, the NPC it is about is
        still in the player's life (a funeral, requiring none, still happens)."""
        if not self.allows(event.when, p):
            return False
        npc_id = bind.get("npc_id") if bind else None
        if npc_id is None or not event.when.npc_roles:
            return True
        npc = p.npc(int(npc_id))
        return npc is not None and npc.alive

    def bind(self, event: Event, p: Player) -> dict[str, str]:
        """Template values an event fixes when it happens: ``$npc`` is a living
        NPC of the event's first required role."""
        roles = event.when.npc_roles
        if not roles:
            return {}
        npcs = self.npcs_of(p, roles[0], event.when.min_closeness, event.when.max_closeness)
        if not npcs:
            return {}
        npc = self.rng.choice(npcs)
        return {"npc": npc.name, "npc_role": npc.role, "npc_id": str(npc.id)}

    # ----------------------------------------------------------------- effects

    def pick(self, outcomes: tuple[Outcome, ...]) -> Effects:
        weights = [o.weight for o in outcomes]
        return self.rng.choices(outcomes, weights=weights)[0].effects

    def happen(self, u: Unit, event: Event, bind: dict[str, str] | None = None) -> None:
        """An event without choices: its effects, then one of its outcomes."""
        self.apply(u, event.effects, bind)
        if event.outcomes:
            self.apply(u, self.pick(event.outcomes), bind)

    def apply(self, u: Unit, eff: Effects, bind: dict[str, str] | None = None, target: Npc | None = None) -> None:
        """Apply ``eff`` to the unit's player, recording every change;
        ``target``: the NPC of an NPC-targeted action."""
        p = u.p
        if not p.alive:
            return
        for stat in STAT_NAMES:
            delta = getattr(eff, stat)
            if delta:
                self.change_stat(u, stat, delta)
        money = eff.money
        if eff.salary_share and p.job:
            money += round(self.content.jobs[p.job].salary * eff.salary_share)
        if money > 0 or money < 0 and not self.minor(p):
            self.change_money(u, money)
        elif money < 0:
            self.charge(u, -money)
        for flag in eff.flags_add:
            self.set_flag(u, flag, True)
        for flag in eff.flags_remove:
            self.set_flag(u, flag, False)
        if target is not None and target.alive:
            if eff.npc_money:
                self.gift(u, target, eff.npc_money)
            if eff.closeness:
                self.change_closeness(u, target, eff.closeness)
        if eff.education:
            p.education = eff.education
            p.edu_since = p.age_days
            u.set("education", p.education)
            u.refresh_actions = True
        if eff.major:
            self.enrol(u, eff.major)
        if eff.job:
            self.take_job(u, eff.job)
        if eff.promote:
            self.promote(u)
        for add in eff.npc_add:
            self.add_npc(u, add)
        for change in eff.npc:
            for npc in self.npcs_of(p, change.role):
                if bind and "npc_id" in bind and change.role == bind.get("npc_role") and str(npc.id) != bind["npc_id"]:
                    continue
                new = _clamp(npc.closeness + change.closeness)
                if u.ledger is not None and new != npc.closeness:
                    u.ledger.npc(npc, new - npc.closeness)
                npc.closeness = new
                if change.dies or change.leaves:
                    npc.alive = False
                    u.refresh_actions = True
                u.ops.append(wire.NpcOp(self.npc_view(p, npc)))
        for ref in eff.schedule:
            if len(p.scheduled) < LIMITS.scheduled:
                p.scheduled.append(Scheduled(day=p.age_days + ref.in_days, event=ref.event, bind=dict(bind or {})))
        if eff.feed:
            self.feed(u, self.render(eff.feed, p, bind), key=self._is_key(eff))
        if eff.die:
            self.die(u, self.render(eff.die, p, bind))

    def _is_key(self, eff: Effects) -> bool:
        """Whether an effect's feed line is a key moment of the life: it
        changes job, schooling or family, or adds an asset, an illness or a
        life event (marriage, a baby)."""
        if eff.job or eff.education or (eff.major and eff.major != "none"):
            return True
        if any(add.role in _KEY_ROLES for add in eff.npc_add) or any(ch.dies for ch in eff.npc):
            return True
        flags = self.content.flags
        return any(flags[f].kind in _KEY_FLAG_KINDS for f in eff.flags_add if f in flags)

    def enrol(self, u: Unit, major_id: str) -> None:
        """Start the level of a major with that major, or (``"none"``) drop the major."""
        p = u.p
        u.refresh_actions = True
        if major_id == "none":
            p.major = ""
            return
        major = self.content.majors[major_id]
        reason = self.why_not(major.when, p)
        if reason:
            self.feed(u, f"The {major.label} programme turned you down: {reason}.")
            return
        p.major = major.id
        if p.education != major.level:
            p.education = major.level
            p.edu_since = p.age_days
            u.set("education", p.education)

    def change_stat(self, u: Unit, stat: str, delta: int) -> None:
        stats = u.p.stats
        old = getattr(stats, stat)
        new = _clamp(old + delta)
        if new != old:
            setattr(stats, stat, new)
            u.stats[stat] = new
            if u.ledger is not None:
                u.ledger.stat(stat, new - old)

    def change_money(self, u: Unit, delta: int) -> None:
        """Add ``delta`` to the player's money; crossing zero sets or clears the debt flag."""
        old = u.p.money
        u.p.money += delta
        if u.p.money < u.p.low_money:
            u.p.low_money = u.p.money
        u.set("money", u.p.money)
        if u.ledger is not None:
            u.ledger.money += delta
        if self._debt_flag and (old < 0) != (u.p.money < 0):
            self.set_flag(u, self._debt_flag, u.p.money < 0)

    # ----------------------------------------------------------------- who pays

    def minor(self, p: Player) -> bool:
        """Whether ``p`` is under the age of majority: never in debt, parents pay."""
        return p.age_days < self._adult_days

    def who_pays(self, p: Player, amount: int) -> str:
        """Who pays a cost of ``amount``: ``"self"`` for an adult (who may not
        have it), for a minor ``PAID_BY_PARENTS`` while a payer lives, else
        ``"self"`` if they have enough, else ``""``: nobody."""
        if not self.minor(p):
            return "self"
        payers = self._payers
        if any(n.alive and n.role in payers for n in p.npcs):
            return PAID_BY_PARENTS
        return "self" if p.money >= amount else ""

    def pay(self, u: Unit, amount: int, payer: str) -> None:
        """Pay a cost of ``amount`` by ``payer`` (from :meth:`who_pays`)."""
        if payer == PAID_BY_PARENTS:
            roles = sorted({n.role for n in u.p.npcs if n.alive and n.role in self._payers})
            who = f"Your {roles[0]}" if len(roles) == 1 else "Your parents"
            self.feed(u, f"{who} paid {amount:,} for you.")
            if u.ledger is not None:
                u.ledger.paid_by = PAID_BY_PARENTS
        elif payer:
            self.change_money(u, -amount)

    def charge(self, u: Unit, amount: int) -> None:
        """An event's (or any effect's) cost of ``amount``: an adult pays, into
        debt if need be; a minor's payers pay, else the minor if they can, else
        it is waived."""
        payer = self.who_pays(u.p, amount)
        if payer:
            self.pay(u, amount, payer)
        else:
            self.feed(u, f"It would have cost {amount:,}, but nobody could pay, so it was let go.")

    def set_flag(self, u: Unit, flag: str, on: bool) -> None:
        """Give (``on``) or take away one flag, recording the change."""
        flags = u.p.flags
        if (flag in flags) == on:
            return
        if on:
            flags.add(flag)
        else:
            flags.discard(flag)
        u.flags_changed = True
        u.refresh_actions = True
        if u.ledger is not None:
            u.ledger.flag(flag, on)

    def flag_view(self, p: Player) -> list[dict[str, str]]:
        """What the player owns and is: ``{id, label, kind}`` in content order."""
        known = self.content.flags
        out = [{"id": f.id, "label": f.label, "kind": f.kind} for f in known.values() if f.id in p.flags]
        # A flag a newer content pack no longer declares still shows, by its id.
        out += [{"id": f, "label": f.replace("_", " "), "kind": "life"} for f in sorted(p.flags - known.keys())]
        return out

    def finish(self, u: Unit) -> None:
        """End-of-unit views: warnings for thresholds crossed since the unit
        began (once per crossing: compared with ``u.start``), and the flags."""
        p = u.p
        if u.flags_changed:
            u.set("flags", self.flag_view(p))
        if not p.alive:
            return
        stats, start = p.stats, u.start
        # Every stat change goes through change_stat, which records it in u.stats.
        for i, stat, limit in self._warnings if u.stats else ():
            old, new = start[i], getattr(stats, stat)
            if new >= old:
                continue
            if new < limit.critical <= old:
                u.ops.append(wire.Warning(kind=stat, level="critical", text=self.render(limit.critical_text, p)))
            elif new < limit.low <= old:
                u.ops.append(wire.Warning(kind=stat, level="low", text=self.render(limit.low_text, p)))
        if p.money < 0 <= start[4]:
            u.ops.append(wire.Warning(kind="money", level="low", text=self.render(self._debt_text, p)))

    # ----------------------------------------------------------------- people

    def change_closeness(self, u: Unit, npc: Npc, delta: int) -> None:
        """Move one NPC's closeness by ``delta`` (clamped), recording it."""
        new = _clamp(npc.closeness + delta)
        if new != npc.closeness:
            if u.ledger is not None:
                u.ledger.npc(npc, new - npc.closeness)
            npc.closeness = new
            u.ops.append(wire.NpcOp(self.npc_view(u.p, npc)))

    def gift(self, u: Unit, npc: Npc, by_role: dict[str, int]) -> None:
        """What ``npc`` gives when asked: their role's amount, scaled by closeness."""
        amount = by_role.get(npc.role, 0) * npc.closeness // 100
        if amount > 0:
            self.change_money(u, amount)
            self.feed(u, f"{npc.name} gave you {amount:,}.")
        else:
            self.feed(u, f"{npc.name} had nothing to give you.")

    def feed(self, u: Unit, text: str, *, key: bool = False) -> None:
        """Tell the player ``text``: a line of their story at their age (a key
        moment of the life too when ``key``), sent as a ``feed`` op."""
        age, text = story.record(u.p, text, key=key)
        u.ops.append(wire.Feed(text, age_days=age))

    def npc_view(self, p: Player, npc: Npc) -> dict[str, Any]:
        """The ``npc`` op (and snapshot entry) of ``npc``; a living NPC's with
        its ``age`` in whole years as of the player's last birthday, so it
        changes only then (:meth:`yearly` sends every living NPC anew) and the
        client's copy never goes stale."""
        view = npc.view()
        if npc.alive:
            birthday = p.age_days - p.age_days % self.year_days
            view["age"] = max(0, birthday + npc.age_offset) // self.year_days
        return view

    def job_view(self, job_id: str | None) -> dict[str, Any] | None:
        job = self.content.jobs.get(job_id or "")
        return {"id": job.id, "title": job.title, "salary": job.salary} if job else None

    def take_job(self, u: Unit, which: str) -> None:
        p = u.p
        if which == "none":
            if p.job is not None:
                p.job = None
                u.set("job", None)
                u.refresh_actions = True
            return
        if which == "best":
            eligible = [j for j in self.content.jobs.values() if self.allows(j.when, p)]
            if not eligible:
                self.feed(u, "Nobody would hire you right now.")
                return
            # Not always the top job: any that pays at least offer_share
            # (content: a half) of it, the better paid the likelier (a job
            # market, not a lookup table).
            best = max(j.salary for j in eligible)
            offers = [j for j in eligible if j.salary >= best * self.content.world.work.offer_share]
            job = self.rng.choices(offers, weights=[j.salary for j in offers])[0]
        else:
            job = self.content.jobs[which]
        p.job = job.id
        p.job_since = p.age_days
        self._best_job(p)
        u.set("job", self.job_view(job.id))
        u.refresh_actions = True
        self.feed(u, f"You got a job: {job.title}.", key=True)

    def promote(self, u: Unit) -> None:
        p = u.p
        job = self.content.jobs.get(p.job or "")
        if job is None:
            return
        nxt = self.content.jobs.get(job.promotes_to)
        if nxt is None or not self.allows(nxt.when, p):
            self.change_stat(u, "happiness", self.content.world.work.raise_happiness)
            self.feed(u, "You got a raise in spirit, if not in title.")
            return
        p.job = nxt.id
        p.job_since = p.age_days
        self._best_job(p)
        u.set("job", self.job_view(nxt.id))
        self.feed(u, f"You were promoted to {nxt.title}.", key=True)

    def _best_job(self, p: Player) -> None:
        """Remember the current job if it pays better than any before in this life."""
        jobs = self.content.jobs
        best = jobs.get(p.best_job or "")
        if p.job in jobs and (best is None or jobs[p.job].salary > best.salary):
            p.best_job = p.job

    def add_npc(self, u: Unit, add: NpcAdd) -> Npc | None:
        p = u.p
        living = [n for n in p.npcs if n.alive]
        if len(living) >= LIMITS.npcs:
            return None
        if len(p.npcs) >= LIMITS.npcs:
            # Forget the longest-gone NPC to keep the list bounded.
            p.npcs.remove(next(n for n in p.npcs if not n.alive))
        personas = [ps.id for ps in self.content.personas.values() if add.role in ps.roles]
        persona = add.persona or self.rng.choice(personas)
        names = self.content.names
        name = self.render(add.name, p) if add.name else npc_name(self.rng, p, add.role, names.first, names.last)
        npc = Npc(
            id=p.next_npc_id,
            name=name,
            role=add.role,
            closeness=_clamp(add.closeness),
            persona=persona,
            age_offset=-p.age_days if add.newborn else round(add.age * self.year_days),
        )
        p.next_npc_id += 1
        p.npcs.append(npc)
        u.ops.append(wire.NpcOp(self.npc_view(p, npc)))
        u.refresh_actions = True
        return npc

    # ----------------------------------------------------------------- life and death

    def new_life(
        self, player_id: int, name: str, life: int, *, avoid_surname: str = "", first_only: bool = False
    ) -> Player:
        """A newborn player with their family, ready for day 0. A ``name`` of
        two or more words keeps its last word as the family's surname; a
        single word (or any ``name`` when ``first_only``) gets one drawn from
        the content, not ``avoid_surname`` (the last life's), and the player
        is called "Name Surname"."""
        rng = self.rng
        w = self.content.world
        birth = w.birth
        p = Player(
            id=player_id,
            name=name,
            life=life,
            stats=Stats(
                health=rng.randint(*birth.health),
                happiness=rng.randint(*birth.happiness),
                smarts=rng.randint(*birth.smarts),
                looks=rng.randint(*birth.looks),
            ),
            money=w.start_money,
            low_money=min(0, w.start_money),
        )
        p.name, p.surname = life_surname(rng, name, self.content.names.last, avoid_surname, first_only=first_only)
        p.next_check = self.pacing.first_check(rng)
        sink: list[wire.Op] = []
        u = Unit(p, sink)
        for member in w.family:
            if rng.random() < member.chance:
                self.add_npc(
                    u,
                    NpcAdd(
                        role=member.role, closeness=member.closeness, age=rng.uniform(member.min_age, member.max_age)
                    ),
                )
        self.feed(u, f"You were born. Welcome to the world, {p.name}.")
        return p

    def daily_death_chance(self, p: Player) -> float:
        """The chance to die today: the world's hazard at the player's whole
        year of age (its middle) and health, from tables built at start."""
        years = p.age_days // self.year_days
        table_year = years if years < MAX_AGE_YEARS else MAX_AGE_YEARS
        chance = self._hazard_age[table_year] * self._hazard_health[p.stats.health]
        if years < 1:
            chance += self._infant
        return chance if chance < 1.0 else 1.0

    def npc_yearly_death_chance(self, npc: Npc, p: Player) -> float:
        years = (p.age_days + npc.age_offset) / self.year_days
        return min(1.0, self.hazard.npc_base * math.exp(self.hazard.npc_growth * years))

    def die(self, u: Unit, cause: str) -> None:
        p = u.p
        if not p.alive:
            return
        for prompt in p.prompts:
            u.ops.append(
                wire.PromptClosed(id=prompt.id, choice=self.content.events[prompt.event].default, by="timeout")
            )
        p.prompts.clear()
        p.scheduled.clear()
        p.alive = False
        p.cause_of_death = cause
        u.set("alive", False)
        u.refresh_actions = True
        self.feed(u, f"You died at {self.years(p.age_days)}: {cause}.")
        past = lives.summarize(self.content, p, self.year_days)
        lives.keep(p, past)
        u.ops.append(wire.Died(cause=cause, age_days=p.age_days, summary=lives.life_view(self.content, past)))

    def death_cause(self, p: Player) -> str:
        """Why ``p`` died today (content's ``[world.death]``)."""
        years = self.years(p.age_days)
        death = self.content.world.death
        if p.stats.health <= death.poor_health:
            return death.poor_health_cause
        if years < 1:
            return death.infant_cause
        if years >= death.old_age:
            return death.old_age_cause
        return self.rng.choice(death.causes)

    def yearly(self, u: Unit) -> None:
        """Birthday work: drift, promotions and firing, NPC aging."""
        p = u.p
        rng = self.rng
        stage = self.stage(p.age_days)
        drift = self._drift.get(stage)
        if drift:
            for stat in STAT_NAMES:
                delta = getattr(drift, stat)
                if delta:
                    self.change_stat(u, stat, delta)
        for settle in self.content.world.settle:
            gap = settle.toward - getattr(p.stats, settle.stat)
            if gap:
                self.change_stat(u, settle.stat, round(gap * settle.share))
        # The flags held as the birthday begins: debt that one of them causes
        # starts its interest next year.
        for _flag, effects in [(f, e) for f, e in self._yearly_flags if f in p.flags]:
            self.apply(u, effects)
        if not p.alive:
            return
        job = self.content.jobs.get(p.job or "")
        work = self.content.world.work
        if job is not None:
            if job.when.max_age < NO_AGE_LIMIT and p.age_days >= job.when.max_age * self.year_days:
                self.feed(u, f"You outgrew your job as {job.title}.")
                self.take_job(u, "none")
            elif rng.random() < job.fire_rate * (
                work.unhappy_fire_factor if p.stats.happiness < work.unhappy_below else 1.0
            ):
                self.feed(u, f"You were fired from your job as {job.title}.", key=True)
                self.take_job(u, "none")
                self.change_stat(u, "happiness", work.fired_happiness)
            elif (
                job.promotes_to
                and p.age_days - p.job_since >= job.promote_after_years * self.year_days
                and rng.random() < work.promote_chance
            ):
                self.promote(u)
        for npc in p.npcs:
            if not npc.alive:
                continue
            if npc.role != "partner" and rng.random() < self.npc_yearly_death_chance(npc, p):
                npc.alive = False
                self.feed(u, f"Your {npc.role.replace('_', ' ')} {npc.name} died.", key=npc.role in FAMILY_ROLES)
                death = self.content.world.death
                self.change_stat(u, "happiness", -max(death.grief_min, npc.closeness // death.grief_per))
            # Everyone is a year older (or gone): the client's copy follows.
            u.ops.append(wire.NpcOp(self.npc_view(p, npc)))
        years = self.years(p.age_days)
        if years in self._birthdays:
            self.feed(u, f"You turned {years}.")
        u.refresh_actions = True

    def education_day(self, u: Unit) -> None:
        """Finish the current level when due, then enrol in a level that starts today."""
        p = u.p
        current = self.content.levels.get(p.education)
        if current is not None and p.age_days - p.edu_since >= round(current.years * self.year_days):
            p.education = current.then
            u.set("education", p.education)
            u.refresh_actions = True
            self.feed(u, f"You finished {current.label.lower()}.", key=True)
        level = self._auto_levels.get(p.age_days)
        if level is not None and p.education != level.id and self.allows(level.when, p):
            p.education = level.id
            p.edu_since = p.age_days
            u.set("education", p.education)
            u.refresh_actions = True
            self.feed(u, f"You started {level.label.lower()}.")

    def pay_delta(self, p: Player, first: int, last: int) -> int:
        """The money salary and living costs move over the days ``first + 1
        .. last`` (the player's age is ``last``): exactly the sum of the daily
        amounts (their shares telescope, see pacing.share_between)."""
        yd = self.year_days
        job = p.job
        expense = self._expense_at[last] if last < self._table_days else self._expenses[self._stage_search(last)]
        if job is not None:
            salary = self.content.jobs[job].salary
            since = p.job_since
            delta = (salary * (last - since)) // yd - (salary * (first - since)) // yd
            # Living costs and tax are paid from income.
            yearly_cost = expense + self._tax.get(job, 0)
            if yearly_cost:
                delta -= (yearly_cost * last) // yd - (yearly_cost * first) // yd
            return delta
        if expense and p.money > 0:
            # Without income, costs are paid day by day while money lasts (the
            # broke live frugally): up to the first day whose cost takes it to
            # zero or below.
            due = p.money + (expense * first) // yd
            broke = -(-due * yd // expense)
            return -share_between(expense, 0, first, min(last, broke), yd)
        return 0

    def pay_terms(self, p: Player, stage: str) -> tuple[int | None, int, int]:
        """What :meth:`pay_delta` reads of ``p`` over days of ``stage``: the
        salary (None without a job), the day the job began, and the yearly
        costs (living costs of the stage, plus the tax on a salary). A caller
        that pays many spans of one stage and job (the engine's quiet steps)
        reads them once."""
        expense = self._expenses[stage]
        if p.job is None:
            return None, 0, expense
        return self.content.jobs[p.job].salary, p.job_since, expense + self._tax.get(p.job, 0)

    def expenses(self, p: Player, day: int | None = None) -> int:
        """Yearly living costs at the player's age (or at age ``day``), plus the tax on their salary."""
        if day is None:
            day = p.age_days
        tax = self._tax.get(p.job, 0)
        if day < self._table_days:
            return self._expense_at[day] + tax
        return self._expenses[self._stage_search(day)] + tax


def content_conditions(content: Content) -> list[Conditions]:
    """Every condition in a content pack: events, actions, jobs, levels, majors."""
    return (
        [e.when for e in content.events.values()]
        + [a.when for a in content.actions.values()]
        + [j.when for j in content.jobs.values()]
        + [lv.when for lv in content.levels.values()]
        + [m.when for m in content.majors.values()]
    )


def first_day(years: float, year_days: int) -> int:
    """The first whole day ``d`` with ``d / year_days >= years`` (how
    :meth:`Rules.why_not` compares ages), exact whatever the float rounding."""
    day = max(0, math.floor(years * year_days) - 2)
    while day / year_days < years:
        day += 1
    return day


def _stat_in(stat: str, low: int, high: int) -> Callable[[Player], bool]:
    get = attrgetter(stat)
    return lambda p: low <= get(p.stats) <= high


def _knows(role: str, low: int, high: int, want: bool) -> Callable[[Player], bool]:
    """Whether the player has (``want``) or has not a living NPC of ``role`` within the closeness bounds."""

    def check(p: Player) -> bool:
        for n in p.npcs:
            if n.role == role and n.alive and low <= n.closeness <= high:
                return want
        return not want

    return check


# What makes a content feed line a key moment: a new person of these roles
# (see Rules._is_key), or a flag of these kinds.
_KEY_ROLES = frozenset({"partner", "child", "grandchild"})
_KEY_FLAG_KINDS = frozenset({"asset", "illness", "life"})


def _clamp(value: int) -> int:
    return STAT_MIN if value < STAT_MIN else STAT_MAX if value > STAT_MAX else value
