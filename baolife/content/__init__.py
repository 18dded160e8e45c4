"""Game content: loaded from the TOML files in this folder and validated at start.

:func:`load` reads ``world.toml``, ``flags.toml``, ``actions.toml``,
``jobs.toml``, ``education.toml``, ``personas.toml``, every
``events/*.toml`` and (if present) ``achievements.toml``, builds the classes of :mod:`baolife.content.schema` with
strict types (no silent conversions), then cross-checks every reference:
ids, stages, stats, roles, majors, declared flags, template names, and
follow-up chains, then the age rules of :mod:`baolife.content.ages` (who may
be given what at which age, events inside their stage, cooldowns). Any
problem raises :class:`ContentError` naming the file and the id.

One piece: loading and the cross-checks are one pass over one Content, and
the checker's sets (roles, educations, flags set, follow-ups scheduled) are
built once and read by every check; the age rules, which stand alone, are in
ages.py and the classes in schema.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from string import Template
from typing import Any

import cattrs

from ..model import STAT_MAX, STAT_MIN, STAT_NAMES
from . import ages
from .schema import (
    ACTION_GROUPS,
    FLAG_KINDS,
    Achievement,
    Action,
    Conditions,
    Content,
    Effects,
    Event,
    Flag,
    Job,
    Level,
    Lines,
    Major,
    Names,
    Persona,
    World,
)

__all__ = ["ContentError", "Content", "load", "DEFAULT_DIR", "TEMPLATE_FIELDS"]

DEFAULT_DIR = Path(__file__).parent

# Names a content text may use as $name; filled by the engine.
TEMPLATE_FIELDS = frozenset({"name", "first", "surname", "age", "job", "major", "npc", "npc_role", "money"})


class ContentError(Exception):
    """Content that does not validate; the message names file and id."""


def _strict(kind: tuple[type, ...], what: str) -> Any:
    def hook(value: Any, _type: Any) -> Any:
        if isinstance(value, bool) and bool not in kind or not isinstance(value, kind):
            raise TypeError(f"expected {what}, got {type(value).__name__} {value!r}")
        return value

    return hook


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, prefer_attrib_converters=True)
    conv.register_structure_hook(str, _strict((str,), "a string"))
    conv.register_structure_hook(int, _strict((int,), "an integer"))
    conv.register_structure_hook(float, lambda v, _t: float(_strict((int, float), "a number")(v, _t)))
    conv.register_structure_hook(bool, _strict((bool,), "true or false"))
    return conv


_CONV = _converter()


def _read(path: Path, rel: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ContentError(f"{rel}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ContentError(f"{rel}: not valid TOML: {exc}") from None


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ContentError(f"{where}: expected a table")
    try:
        return _CONV.structure(raw, cls)
    except cattrs.BaseValidationError as exc:
        raise ContentError(f"{where}: {'; '.join(cattrs.transform_error(exc))}") from None
    except (TypeError, ValueError) as exc:
        raise ContentError(f"{where}: {exc}") from None


def _items(data: dict[str, Any], key: str, rel: str, *, also: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The array of tables ``[[key]]`` of a file; ``also``: other arrays the file may hold."""
    extra = set(data) - {key, *also}
    if extra:
        wanted = ", ".join(f"[[{k}]]" for k in (key, *also))
        raise ContentError(f"{rel}: unknown top-level key(s) {sorted(extra)}; expected {wanted}")
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ContentError(f"{rel}: {key} must be an array of tables ([[{key}]])")
    return items


def _collect(cls: type, items: list[dict[str, Any]], kind: str, rel: str, into: dict[str, Any]) -> None:
    for index, raw in enumerate(items):
        ident = raw.get("id") if isinstance(raw, dict) else None
        where = f"{rel}: {kind} {ident!r}" if isinstance(ident, str) else f"{rel}: {kind} #{index + 1}"
        obj = _build(cls, {**raw, "source": rel} if isinstance(raw, dict) else raw, where)
        if obj.id in into:
            raise ContentError(f"{where}: duplicate id (also in {into[obj.id].source})")
        into[obj.id] = obj


def _load_file(base: Path, rel: str, key: str, cls: type, into: dict[str, Any]) -> None:
    """Read the ``[[key]]`` items of the file ``rel`` into ``into``, by id."""
    _collect(cls, _items(_read(base / rel, rel), key, rel), key, rel, into)


def load(folder: Path | str | None = None) -> Content:
    """Load and validate all content from ``folder`` (default: the package's).

    Raises:
        ContentError: the first problem found, naming the file and the id.
    """
    base = Path(folder) if folder is not None else DEFAULT_DIR
    world_doc = _read(base / "world.toml", "world.toml")
    if set(world_doc) - {"world", "names"}:
        raise ContentError(f"world.toml: unknown top-level key(s) {sorted(set(world_doc) - {'world', 'names'})}")
    world = _build(World, world_doc.get("world", {}), "world.toml: [world]")
    names = _build(Names, world_doc.get("names", {}), "world.toml: [names]")

    events: dict[str, Event] = {}
    event_files = sorted((base / "events").glob("*.toml"))
    if not event_files:
        raise ContentError(f"events/: no event files in {base / 'events'}")
    for path in event_files:
        _load_file(base, f"events/{path.name}", "event", Event, events)
    actions: dict[str, Action] = {}
    _load_file(base, "actions.toml", "action", Action, actions)
    jobs: dict[str, Job] = {}
    _load_file(base, "jobs.toml", "job", Job, jobs)
    levels: dict[str, Level] = {}
    majors: dict[str, Major] = {}
    edu_doc = _read(base / "education.toml", "education.toml")
    _collect(Level, _items(edu_doc, "level", "education.toml", also=("major",)), "level", "education.toml", levels)
    _collect(Major, _items(edu_doc, "major", "education.toml", also=("level",)), "major", "education.toml", majors)
    flags: dict[str, Flag] = {}
    _load_file(base, "flags.toml", "flag", Flag, flags)
    personas: dict[str, Persona] = {}
    persona_doc = _read(base / "personas.toml", "personas.toml")
    persona_items = _items(persona_doc, "persona", "personas.toml", also=("default_lines",))
    _collect(Persona, persona_items, "persona", "personas.toml", personas)
    default_lines = tuple(
        _build(Lines, raw, f"personas.toml: default_lines #{i + 1}")
        for i, raw in enumerate(_items(persona_doc, "default_lines", "personas.toml", also=("persona",)))
    )

    content = Content(
        world=world,
        names=names,
        events=events,
        actions=actions,
        jobs=jobs,
        levels=levels,
        personas=personas,
        majors=majors,
        flags=flags,
        default_lines=default_lines,
        achievements=_achievements(base),
    )
    _Checker(content).run()
    age_problems = ages.problems(content)
    if age_problems:
        # All of them at once: fixing ages is easier seeing the whole list.
        more = f" (and {len(age_problems) - 1} more below)" if len(age_problems) > 1 else ""
        raise ContentError(age_problems[0] + more + "".join(f"\n  {line}" for line in age_problems[1:]))
    return content


def _achievements(base: Path) -> dict[str, Achievement]:
    """achievements.toml's ``[[achievement]]`` items; none when the pack has no such file."""
    achievements: dict[str, Achievement] = {}
    if (base / "achievements.toml").is_file():
        _load_file(base, "achievements.toml", "achievement", Achievement, achievements)
    return achievements


class _Checker:
    """Cross-references: every id, stage, stat, role, major, flag and template
    name must exist; every follow-up must be reachable and able to stop."""

    def __init__(self, content: Content) -> None:
        self.c = content
        levels = content.levels
        self.educations = {"none"} | set(levels) | {lv.then for lv in levels.values()}
        self.roles = {role for p in content.personas.values() for role in p.roles}
        # Who schedules each event, and which flags some effect sets.
        self.scheduled_by: dict[str, list[str]] = {}
        self.flags_set: set[str] = set()

    def run(self) -> None:
        c = self.c
        w = c.world
        if not w.stages or min(w.stages.values()) != 0:
            raise ContentError("world.toml: [world] stages: the youngest stage must start at age 0")
        if not 1 <= w.check_min_days <= w.check_max_days:
            raise ContentError("world.toml: [world] check_min_days must be >= 1 and <= check_max_days")
        self.pace()
        if not 0 <= w.tax < 1:
            raise ContentError("world.toml: [world] tax must be a share of the salary in 0..1")
        if w.timeout_days < 1:
            raise ContentError("world.toml: [world] timeout_days must be >= 1")
        for stage in list(w.expenses) + [d.stage for d in w.drift]:
            if stage not in w.stages:
                raise ContentError(f"world.toml: [world] unknown stage {stage!r}")
        for settle in w.settle:
            if settle.stat not in STAT_NAMES:
                known = list(STAT_NAMES)
                raise ContentError(f"world.toml: [world] settle: unknown stat {settle.stat!r}; known: {known}")
            if not 0 < settle.share <= 1 or not 0 <= settle.toward <= 100:
                raise ContentError(f"world.toml: [world] settle {settle.stat!r}: share in (0, 1], toward in 0..100")
        for member in w.family:
            self.role(member.role, "world.toml: [world] family")
            if not 0 <= member.chance <= 1 or member.min_age > member.max_age:
                raise ContentError(f"world.toml: [world] family {member.role!r}: chance in 0..1, min_age <= max_age")
        self.money()
        self.numbers()
        if not c.names.first or not c.names.last:
            raise ContentError("world.toml: [names] first and last must not be empty")
        for flag in c.flags.values():
            where = f"{flag.source}: flag {flag.id!r}"
            if flag.kind not in FLAG_KINDS:
                raise ContentError(f"{where}: kind {flag.kind!r} is not one of {list(FLAG_KINDS)}")
            self.text(flag.label, where)
            self.effects(flag.yearly, f"{where}: yearly")
            self.untargeted(flag.yearly, f"{where}: yearly")
        for major in c.majors.values():
            where = f"{major.source}: major {major.id!r}"
            self.text(major.label, where)
            if major.level not in c.levels:
                raise ContentError(f"{where}: level {major.level!r} is not an education level")
            self.conditions(major.when, where)
        for ev in c.events.values():
            self.event(ev)
        for act in c.actions.values():
            where = f"{act.source}: action {act.id!r}"
            self.text(act.label, where)
            if act.group not in ACTION_GROUPS:
                got = f"is {act.group!r}" if act.group else "is missing"
                raise ContentError(f"{where}: group {got}; it must be one of {list(ACTION_GROUPS)}")
            self.target(act, where)
            self.conditions(act.when, where)
            if act.cost < 0 or act.cooldown_days < 0:
                raise ContentError(f"{where}: cost and cooldown_days must not be negative")
            self.effects(act.effects, where)
            for i, out in enumerate(act.outcomes):
                self.outcome(out, f"{where}: outcome #{i + 1}")
        for job in c.jobs.values():
            where = f"{job.source}: job {job.id!r}"
            self.text(job.title, where)
            self.conditions(job.when, where)
            if job.salary < 0:
                raise ContentError(f"{where}: salary must not be negative")
            if job.promotes_to and job.promotes_to not in c.jobs:
                raise ContentError(f"{where}: promotes_to {job.promotes_to!r} is not a job")
            if job.promotes_to == job.id:
                raise ContentError(f"{where}: a job cannot promote to itself")
            if not 0 <= job.fire_rate <= 1 or job.promote_after_years < 0:
                raise ContentError(f"{where}: fire_rate must be in 0..1 and promote_after_years positive")
            if job.promotes_to and not job.promote_after_years:
                raise ContentError(f"{where}: promotes_to needs promote_after_years (years before a promotion)")
        for level in c.levels.values():
            where = f"{level.source}: level {level.id!r}"
            self.text(level.label, where)
            self.conditions(level.when, where)
            if level.years <= 0:
                raise ContentError(f"{where}: years must be positive")
        for persona in c.personas.values():
            where = f"{persona.source}: persona {persona.id!r}"
            if not persona.roles or not persona.traits.strip() or not persona.manner.strip():
                raise ContentError(f"{where}: needs roles, traits and manner")
            for i, lines in enumerate(persona.lines):
                self.lines(lines, f"{where}: lines #{i + 1}", persona.roles)
        for i, lines in enumerate(c.default_lines):
            self.lines(lines, f"personas.toml: default_lines #{i + 1}", sorted(self.roles))
        self.lines_cover_every_role_and_stage()
        for ach in c.achievements.values():
            self.achievement(ach)
        self.reachable()

    def pace(self) -> None:
        """The pace table names every stage (or none), with sane numbers."""
        w = self.c.world
        if w.max_step_days < 1:
            raise ContentError("world.toml: [world] max_step_days must be >= 1")
        if w.first_check_days < 0:
            raise ContentError("world.toml: [world] first_check_days must not be negative")
        if not w.pace:
            return
        for stage in w.pace:
            if stage not in w.stages:
                raise ContentError(f"world.toml: [world.pace.{stage}]: unknown stage; known: {self.c.stage_order}")
        for stage in self.c.stage_order:
            pace = w.pace.get(stage)
            where = f"world.toml: [world.pace.{stage}]"
            if pace is None:
                raise ContentError(f"{where}: missing; the pace table needs every stage")
            if not 1 <= pace.days <= w.max_step_days:
                raise ContentError(f"{where} days must be >= 1 and <= max_step_days ({w.max_step_days})")
            low, high = pace.check_days
            if not 1 <= low <= high:
                raise ContentError(f"{where} check_days must be [min, max] with 1 <= min <= max")

    def money(self) -> None:
        """Who pays (known roles), the debt flag (declared) and the warning thresholds."""
        w = self.c.world
        where = "world.toml: [world.money]"
        if w.money.adult_age < 0:
            raise ContentError(f"{where} adult_age must not be negative")
        for role in w.money.payers:
            self.role(role, f"{where} payers")
        if w.money.debt_flag:
            self.flag(w.money.debt_flag, f"{where} debt_flag")
            self.flags_set.add(w.money.debt_flag)  # the engine sets it
        self.text(w.money.debt_text, where)
        for stat, limit in w.warnings.items():
            at = f"world.toml: [world.warnings.{stat}]"
            if stat not in STAT_NAMES:
                raise ContentError(f"{at}: unknown stat; known: {list(STAT_NAMES)}")
            if not 0 <= limit.critical < limit.low <= 100:
                raise ContentError(f"{at}: needs 0 <= critical < low <= 100")
            self.text(limit.low_text, at)
            self.text(limit.critical_text, at)

    def numbers(self) -> None:
        """The game's numbers in world.toml: stats at birth, work, causes of
        death, grief, birthdays and talk, each within its scale."""
        w = self.c.world
        for stat in STAT_NAMES:
            low, high = getattr(w.birth, stat)
            if not STAT_MIN <= low <= high <= STAT_MAX:
                raise ContentError(
                    f"world.toml: [world.birth] {stat} must be [min, max] with {STAT_MIN} <= min <= max <= {STAT_MAX}"
                )
        work, where = w.work, "world.toml: [world.work]"
        for name in ("promote_chance", "offer_share"):
            if not 0 <= getattr(work, name) <= 1:
                raise ContentError(f"{where} {name} must be in 0..1")
        if work.unhappy_fire_factor < 0:
            raise ContentError(f"{where} unhappy_fire_factor must not be negative")
        if not STAT_MIN <= work.unhappy_below <= STAT_MAX:
            raise ContentError(f"{where} unhappy_below must be a happiness in {STAT_MIN}..{STAT_MAX}")
        for name in ("raise_happiness", "fired_happiness"):
            if abs(getattr(work, name)) > STAT_MAX:
                raise ContentError(f"{where} {name} must be in -{STAT_MAX}..{STAT_MAX}")
        death, where = w.death, "world.toml: [world.death]"
        if not STAT_MIN <= death.poor_health <= STAT_MAX:
            raise ContentError(f"{where} poor_health must be a health in {STAT_MIN}..{STAT_MAX}")
        if death.old_age < 0:
            raise ContentError(f"{where} old_age must not be negative")
        causes = [death.poor_health_cause, death.infant_cause, death.old_age_cause, *death.causes]
        if not death.causes or not all(cause.strip() for cause in causes):
            raise ContentError(f"{where} needs every cause, and causes at least one, none of them empty")
        if death.grief_min < 0 or death.grief_per < 1:
            raise ContentError(f"{where} grief_min must not be negative and grief_per must be >= 1")
        days = list(w.birthdays)
        if any(year < 1 for year in days) or days != sorted(set(days)):
            raise ContentError("world.toml: [world] birthdays must be ages >= 1, rising, each once")
        if not 0 <= w.talk_closeness <= STAT_MAX:
            raise ContentError(f"world.toml: [world] talk_closeness must be in 0..{STAT_MAX}")

    def target(self, act: Action, where: str) -> None:
        """An NPC-targeted action names known roles; only such actions act on "the" NPC."""
        if act.target not in ("", "npc"):
            raise ContentError(f'{where}: target must be "npc" or absent, got {act.target!r}')
        if bool(act.target) != bool(act.roles):
            raise ContentError(f'{where}: an action with target = "npc" needs roles, and roles need the target')
        for role in act.roles:
            self.role(role, f"{where}: roles")
        for eff in [act.effects, *(o.effects for o in act.outcomes)]:
            if not act.target and (eff.closeness or eff.npc_money):
                raise ContentError(f"{where}: closeness and npc_money act on the target; the action has none")
            for role, amount in eff.npc_money.items():
                self.role(role, f"{where}: npc_money")
                if amount < 0:
                    raise ContentError(f"{where}: npc_money {role!r} must not be negative")

    def reachable(self) -> None:
        """Every follow-up is scheduled by something; every declared flag is set by something."""
        for ev in self.c.events.values():
            if ev.followup and ev.id not in self.scheduled_by:
                raise ContentError(f"{ev.source}: event {ev.id!r}: followup event that nothing schedules")
        for flag in self.c.flags.values():
            if flag.id not in self.flags_set:
                raise ContentError(f"{flag.source}: flag {flag.id!r}: declared but no effect ever sets it")

    def lines(self, lines: Lines, where: str, roles: Sequence[str]) -> None:
        """Scripted lines: known stages, roles the speaker can have, no empty list, a reply."""
        for field in ("stages", "npc_stages", "roles"):
            if getattr(lines, field) == ():
                raise ContentError(f"{where}: {field} is empty; leave it out to mean every one")
        for stage in (lines.stages or ()) + (lines.npc_stages or ()):
            if stage not in self.c.world.stages:
                raise ContentError(f"{where}: unknown stage {stage!r}; known: {self.c.stage_order}")
        for role in lines.roles or ():
            if role not in roles:
                raise ContentError(f"{where}: role {role!r} is not one of {list(roles)}")
        if not lines.replies:
            raise ContentError(f"{where}: needs at least one reply")
        for line in lines.greetings + lines.replies + lines.questions:
            self.text(line, where)

    def lines_cover_every_role_and_stage(self) -> None:
        """Whatever persona speaks, [[default_lines]] have something for
        every role at every stage of the player, at any age of the speaker."""
        for role in sorted(self.roles):
            for stage in self.c.stage_order:
                if not any(d.npc_stages is None and d.fits(role, stage, None) for d in self.c.default_lines):
                    raise ContentError(f"personas.toml: no default_lines for role {role!r} at stage {stage!r}")

    def achievement(self, ach: Achievement) -> None:
        where = f"{ach.source}: achievement {ach.id!r}"
        self.text(ach.label, where)
        if ach == Achievement(id=ach.id, label=ach.label, source=ach.source):
            raise ContentError(f"{where}: sets no condition, so every life would earn it")
        for edu in ach.education:
            if edu not in self.educations:
                raise ContentError(f"{where}: unknown education {edu!r}; known: {sorted(self.educations)}")
        for flag in ach.flags + ach.any_flags:
            self.flag(flag, where)
        for role in ach.npc_roles:
            self.role(role, where)
        if ach.min_age < 0:
            raise ContentError(f"{where}: min_age must not be negative")

    def role(self, role: str, where: str) -> None:
        if role not in self.roles:
            raise ContentError(f"{where}: no persona speaks for role {role!r}")

    def flag(self, flag: str, where: str) -> None:
        if flag not in self.c.flags:
            raise ContentError(f"{where}: flag {flag!r} is not declared in flags.toml")

    def text(self, text: str, where: str) -> None:
        tpl = self.c.template(text)
        if not tpl.is_valid():
            raise ContentError(f"{where}: bad $-template in {text!r}")
        unknown = set(tpl.get_identifiers()) - TEMPLATE_FIELDS
        if unknown:
            raise ContentError(
                f"{where}: unknown template name(s) {sorted(unknown)} in {text!r}; known: {sorted(TEMPLATE_FIELDS)}"
            )

    def conditions(self, cond: Conditions, where: str) -> None:
        c = self.c
        for stage in cond.stages:
            if stage not in c.world.stages:
                raise ContentError(f"{where}: unknown stage {stage!r}; known: {c.stage_order}")
        for stat in list(cond.min) + list(cond.max):
            if stat not in STAT_NAMES:
                raise ContentError(f"{where}: unknown stat {stat!r}; known: {list(STAT_NAMES)}")
        for job in cond.jobs:
            if job not in c.jobs:
                raise ContentError(f"{where}: unknown job {job!r}")
        for edu in cond.education + cond.not_education:
            if edu not in self.educations:
                raise ContentError(f"{where}: unknown education {edu!r}; known: {sorted(self.educations)}")
        for major in cond.majors:
            if major not in c.majors:
                raise ContentError(f"{where}: unknown major {major!r}; known: {sorted(c.majors)}")
        for flag in cond.flags + cond.not_flags + cond.any_flags:
            self.flag(flag, where)
        for role in cond.npc_roles + cond.not_npc_roles:
            self.role(role, where)
        if cond.min_age > cond.max_age:
            raise ContentError(f"{where}: min_age is above max_age")
        if (cond.min_closeness is not None or cond.max_closeness is not None) and not cond.npc_roles:
            raise ContentError(f"{where}: min_closeness and max_closeness need npc_roles")

    def untargeted(self, eff: Effects, where: str) -> None:
        if eff.closeness or eff.npc_money:
            raise ContentError(f"{where}: closeness and npc_money belong to NPC-targeted actions only")

    def outcome(self, out: Any, where: str, owner: str = "") -> None:
        if out.weight <= 0:
            raise ContentError(f"{where}: weight must be positive")
        self.effects(out.effects, where, owner)

    def effects(self, eff: Effects, where: str, owner: str = "") -> None:
        """Check ``eff``; ``owner`` is the id of the event it belongs to, if any."""
        c = self.c
        if owner:
            self.untargeted(eff, where)
        if eff.feed:
            self.text(eff.feed, where)
        if eff.job and eff.job not in ("best", "none") and eff.job not in c.jobs:
            raise ContentError(f"{where}: effects job {eff.job!r} is not a job, 'best' or 'none'")
        if eff.education and eff.education not in self.educations:
            raise ContentError(f"{where}: effects education {eff.education!r} is unknown")
        if eff.major and eff.major != "none" and eff.major not in c.majors:
            raise ContentError(f"{where}: effects major {eff.major!r} is not a major or 'none'")
        for flag in eff.flags_add + eff.flags_remove:
            self.flag(flag, where)
        self.flags_set.update(eff.flags_add)
        for add in eff.npc_add:
            if add.persona and add.persona not in c.personas:
                raise ContentError(f"{where}: npc_add persona {add.persona!r} is unknown")
            if add.persona and add.role not in c.personas[add.persona].roles:
                raise ContentError(f"{where}: persona {add.persona!r} does not speak for role {add.role!r}")
            self.role(add.role, where)
            if add.name:
                self.text(add.name, where)
        for change in eff.npc:
            self.role(change.role, where)
        for ref in eff.schedule:
            target = c.events.get(ref.event)
            if target is None:
                raise ContentError(f"{where}: schedule event {ref.event!r} is unknown")
            if ref.in_days < 1:
                raise ContentError(f"{where}: schedule in_days must be >= 1")
            if ref.event == owner and not (target.when.flags or target.when.npc_roles):
                # A recurring follow-up (an illness, an upkeep) must be able to stop.
                raise ContentError(f"{where}: an event that schedules itself must require a flag or an NPC role")
            self.scheduled_by.setdefault(ref.event, []).append(where)
        if eff.die:
            self.text(eff.die, where)

    def event(self, ev: Event) -> None:
        where = f"{ev.source}: event {ev.id!r}"
        self.text(ev.title, where)
        self.text(ev.text, where)
        self.conditions(ev.when, where)
        if ev.weight <= 0:
            raise ContentError(f"{where}: weight must be positive")
        if ev.cooldown_days < 0 or ev.timeout_days < 0:
            raise ContentError(f"{where}: cooldown_days and timeout_days must not be negative")
        if not ev.followup and not self.possible(ev.when):
            raise ContentError(f"{where}: its stages and ages never overlap, so it can never happen")
        self.effects(ev.effects, where, ev.id)
        for i, out in enumerate(ev.outcomes):
            self.outcome(out, f"{where}: outcome #{i + 1}", ev.id)
        keys = [ch.key for ch in ev.choices]
        if len(set(keys)) != len(keys):
            raise ContentError(f"{where}: choice keys must be unique, got {keys}")
        if ev.choices:
            if not 2 <= len(ev.choices) <= 4:
                raise ContentError(f"{where}: an event with choices needs 2 to 4 of them, got {len(ev.choices)}")
            if ev.default not in keys:
                raise ContentError(f"{where}: default {ev.default!r} is not one of its choices {keys}")
            if ev.effects != Effects() or ev.outcomes:
                # They would never happen: a prompt applies only the chosen choice.
                raise ContentError(f"{where}: an event with choices puts its effects in the choices")
        elif ev.default:
            raise ContentError(f"{where}: default given but the event has no choices")
        for ch in ev.choices:
            cw = f"{where}: choice {ch.key!r}"
            self.text(ch.label, cw)
            self.effects(ch.effects, cw, ev.id)
            for i, out in enumerate(ch.outcomes):
                self.outcome(out, f"{cw}: outcome #{i + 1}", ev.id)

    def possible(self, cond: Conditions) -> bool:
        """Whether some life stage lets ``cond``'s stages and age band hold together."""
        order = self.c.stage_order
        starts = [self.c.world.stages[s] for s in order]
        for i, stage in enumerate(order):
            high = starts[i + 1] if i + 1 < len(order) else float("inf")
            if (not cond.stages or stage in cond.stages) and cond.min_age < high and cond.max_age > starts[i]:
                return True
        return False


def template_names(text: str) -> set[str]:
    """The $names a content text uses."""
    return set(Template(text).get_identifiers())
