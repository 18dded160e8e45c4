"""The shape of game content: life events, actions, jobs, education, NPC
personas and the world's rules, as frozen attrs classes.

Content is data (TOML files next to this module); nothing in it is code.
Conditions and effects are closed sets of named fields, checked when the
content is loaded, so a typo in a file is an error at start, not a surprise
in play. Ages in conditions are in game years; durations are in game days.

One piece: it is the format of the content files, one small frozen class per
kind of table, read together as the reference docs/CONTENT.md describes; it
holds no logic to split.
"""

from __future__ import annotations

from string import Template

import attrs

# ``Conditions.max_age`` when none is given: an age (years) no life reaches,
# so a bound at or above it is no bound at all.
NO_AGE_LIMIT = 1000.0


def _tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)  # type: ignore[arg-type]


def _tuple_or_none(value: object) -> tuple[str, ...] | None:
    # None (left out) means "any"; an explicit [] stays () so the checker can refuse it.
    return None if value is None else _tuple(value)


@attrs.frozen
class Conditions:
    """When something can happen. Every listed condition must hold."""

    min_age: float = 0.0
    max_age: float = NO_AGE_LIMIT
    stages: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    flags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    not_flags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    # At least one of these flags (e.g. any illness a doctor can treat).
    any_flags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    has_job: bool | None = None
    jobs: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    education: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    not_education: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    # The player's university major (see education.toml [[major]]).
    majors: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    min: dict[str, int] = attrs.Factory(dict)
    max: dict[str, int] = attrs.Factory(dict)
    min_money: int | None = None
    max_money: int | None = None
    npc_roles: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    not_npc_roles: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    # Closeness bounds of the NPCs of ``npc_roles`` that count (e.g. a partner you barely speak to).
    min_closeness: int | None = None
    max_closeness: int | None = None


@attrs.frozen
class NpcAdd:
    """A new person enters the player's life."""

    role: str
    persona: str = ""
    closeness: int = 50
    # The NPC's age relative to the player, in years (negative: younger).
    age: float = 0.0
    # Born today (the player's own child): age 0 whatever the player's age.
    newborn: bool = False
    name: str = ""


@attrs.frozen
class NpcChange:
    """A change to the player's living NPCs of one role."""

    role: str
    closeness: int = 0
    dies: bool = False
    leaves: bool = False


@attrs.frozen
class ScheduleRef:
    """A follow-up event due ``in_days`` from now. It keeps the NPC the
    scheduling event was about, and fires only if its conditions still hold."""

    event: str
    in_days: int = 1


@attrs.frozen
class Effects:
    """What happens: stat and money deltas, flags, job, education, people,
    follow-up events, a feed line, or death."""

    health: int = 0
    happiness: int = 0
    smarts: int = 0
    looks: int = 0
    money: int = 0
    # Money as a share of the player's yearly salary (e.g. 0.1 = a tenth of it).
    salary_share: float = 0.0
    flags_add: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    flags_remove: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    feed: str = ""
    # A job id, "none", or "best": a job the player qualifies for, among those
    # paying at least World.work.offer_share of the best-paid one, the better
    # paid the likelier.
    job: str = ""
    promote: bool = False
    education: str = ""
    # A major id: enrol in its level with that major; "none": forget the major.
    major: str = ""
    npc_add: tuple[NpcAdd, ...] = ()
    npc: tuple[NpcChange, ...] = ()
    schedule: tuple[ScheduleRef, ...] = ()
    die: str = ""
    # Only in an NPC-targeted action: the change to that person's closeness,
    # and the money they give, by their role, at closeness 100 (scaled by
    # their closeness: a distant uncle gives little).
    closeness: int = 0
    npc_money: dict[str, int] = attrs.Factory(dict)


@attrs.frozen
class Outcome:
    """One weighted possible result of a choice or action."""

    weight: float = 1.0
    effects: Effects = Effects()


@attrs.frozen
class Choice:
    key: str
    label: str
    effects: Effects = Effects()
    outcomes: tuple[Outcome, ...] = ()


@attrs.frozen
class Event:
    """A life event. With choices it opens a prompt; without, its effects
    happen at once. ``followup`` events fire only when scheduled."""

    id: str
    title: str
    text: str
    when: Conditions = Conditions()
    weight: float = 1.0
    once: bool = False
    cooldown_days: int = 0
    timeout_days: int = 0
    default: str = ""
    followup: bool = False
    effects: Effects = Effects()
    # Without choices: one of these happens after ``effects`` (e.g. the course of an illness).
    outcomes: tuple[Outcome, ...] = ()
    choices: tuple[Choice, ...] = ()
    source: str = ""

    def choice(self, key: str) -> Choice | None:
        for choice in self.choices:
            if choice.key == key:
                return choice
        return None


@attrs.frozen
class Action:
    """Something a player may do at will (``act``)."""

    id: str
    label: str
    # Where the client lists it: one of ACTION_GROUPS (checked at load; required).
    group: str = ""
    when: Conditions = Conditions()
    cost: int = 0
    cooldown_days: int = 0
    effects: Effects = Effects()
    outcomes: tuple[Outcome, ...] = ()
    # "npc": aimed at one person of ``roles``, named by ``act.npc``; "" for none.
    target: str = ""
    roles: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    source: str = ""


ACTION_GROUPS = ("daily", "health", "money", "relationships", "career")


@attrs.frozen
class Job:
    id: str
    title: str
    salary: int
    # Chance per game year of being fired; raised while unhappy (World.work).
    fire_rate: float
    when: Conditions = Conditions()
    promotes_to: str = ""
    # Years in the job before a promotion may come; required with promotes_to.
    promote_after_years: float = 0.0
    source: str = ""


@attrs.frozen
class Level:
    """An education level. ``auto_age``: enrolled automatically at that age;
    otherwise entered by an effect. After ``years`` the player holds ``then``."""

    id: str
    label: str
    years: float
    then: str
    auto_age: float | None = None
    when: Conditions = Conditions()
    source: str = ""


@attrs.frozen
class Major:
    """A field of study at an education level (university). Jobs and
    events may require it; the player holds it after enrolling."""

    id: str
    label: str
    level: str
    when: Conditions = Conditions()
    source: str = ""


@attrs.frozen
class Flag:
    """A fact about a life (a trait, a habit, an illness, an asset). Every
    flag content uses is declared; ``yearly`` happens at each birthday while
    the player holds it (upkeep of a house, the toll of smoking, a pension).
    ``min_age`` is checked against the ages of every effect that sets it."""

    id: str
    label: str
    kind: str
    yearly: Effects = Effects()
    # No effect may give the flag to someone younger (a house, a car: 18).
    min_age: float = 0.0
    source: str = ""


FLAG_KINDS = ("trait", "habit", "illness", "asset", "life")


@attrs.frozen
class Lines:
    """Scripted lines (the offline provider's) written for some roles while
    the player, and the speaker, are at some life stages. A filter left out
    fits everyone; see docs/CONTENT.md for how a line is chosen."""

    stages: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    npc_stages: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    roles: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    greetings: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    replies: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    questions: tuple[str, ...] = attrs.field(default=(), converter=_tuple)

    def fits(self, role: str | None, stage: str | None, npc_stage: str | None) -> bool:
        """Whether these lines are written for ``role`` speaking to a player
        at ``stage`` while the speaker is at ``npc_stage`` (None: not asked)."""
        return (
            (role is None or self.roles is None or role in self.roles)
            and (stage is None or self.stages is None or stage in self.stages)
            and (npc_stage is None or self.npc_stages is None or npc_stage in self.npc_stages)
        )


@attrs.frozen
class Persona:
    """How an NPC speaks: traits and manner for the LLM prompt, ``lines`` for
    the scripted provider."""

    id: str
    roles: tuple[str, ...] = attrs.field(converter=_tuple)
    traits: str
    manner: str
    lines: tuple[Lines, ...] = ()
    source: str = ""


@attrs.frozen
class FamilyMember:
    role: str
    min_age: float
    max_age: float
    closeness: int = 70
    chance: float = 1.0


@attrs.frozen
class Hazard:
    """Annual probability of death: ``base * exp(growth * age_years) *
    exp(health_scale * (50 - health)) + infant`` (infant only in year 0),
    with the age taken at the middle of the player's current year. NPCs die
    by ``npc_base * exp(npc_growth * age_years)``, checked at each birthday."""

    base: float
    growth: float
    health_scale: float
    infant: float
    npc_base: float
    npc_growth: float


@attrs.frozen
class Drift:
    """Yearly stat drift (applied at each birthday) for a life stage."""

    stage: str
    health: int = 0
    happiness: int = 0
    smarts: int = 0
    looks: int = 0


@attrs.frozen
class Settle:
    """At each birthday, ``stat`` moves ``share`` of the way toward ``toward``
    (people get used to their lot: joy and misery both fade)."""

    stat: str
    toward: int
    share: float


@attrs.frozen
class Pace:
    """How fast one life stage runs. Each step (a player's day boundary,
    ``day_ticks`` ticks: one real second at the defaults) ``days`` game days
    pass (times the player's fast-forward factor); ``check_days`` is
    ``[min, max]``: game days between two random-event checks in the stage."""

    days: int
    check_days: tuple[int, int]


@attrs.frozen
class Money:
    """Who pays for what. Before ``adult_age`` a life never goes into debt:
    the living ``payers`` (parents) pay its costs, else it pays from its own
    money if it can, else an action is refused and an event's cost waived.
    Adults go into debt from events only; ``debt_flag`` is set while money
    is below zero (its yearly effects are the interest and the worry)."""

    adult_age: float
    payers: tuple[str, ...] = attrs.field(converter=_tuple)
    debt_flag: str = ""
    debt_text: str = "You are in debt."


@attrs.frozen
class Threshold:
    """Warn when a stat falls below ``low`` or ``critical`` (once per crossing)."""

    low: int
    critical: int
    low_text: str
    critical_text: str


@attrs.frozen
class Birth:
    """A newborn's stats: each drawn uniformly from its ``[min, max]``, in
    the order of ``STAT_NAMES`` (so a seed replays)."""

    health: tuple[int, int]
    happiness: tuple[int, int]
    smarts: tuple[int, int]
    looks: tuple[int, int]


@attrs.frozen
class Work:
    """What each birthday does to a job, besides the job's own ``fire_rate``,
    ``promotes_to`` and ``promote_after_years``: once those years have
    passed, a promotion with ``promote_chance`` (to a job the player does
    not qualify for: ``raise_happiness`` instead); the fire rate times
    ``unhappy_fire_factor`` while happiness is below ``unhappy_below``;
    ``fired_happiness`` on being fired. An effect's ``job = "best"`` offers
    the jobs paying at least ``offer_share`` of the best-paid one."""

    promote_chance: float
    raise_happiness: int
    unhappy_below: int
    unhappy_fire_factor: float
    fired_happiness: int
    offer_share: float


@attrs.frozen
class Death:
    """Why a life ended when the hazard's roll (or health 0) ends it:
    ``poor_health_cause`` at health ``poor_health`` or less, else
    ``infant_cause`` in the first year, else ``old_age_cause`` from
    ``old_age`` (years) on, else one of ``causes`` at random. An NPC's
    death costs the player ``max(grief_min, closeness // grief_per)``
    happiness."""

    poor_health: int
    poor_health_cause: str
    infant_cause: str
    old_age: float
    old_age_cause: str
    causes: tuple[str, ...] = attrs.field(converter=_tuple)
    grief_min: int
    grief_per: int


@attrs.frozen
class World:
    """Rules of the world that are data rather than code."""

    stages: dict[str, float]
    birth: Birth
    work: Work
    death: Death
    # Birthdays (years) the story marks with "You turned N.".
    birthdays: tuple[int, ...]
    # Closeness an NPC gains with each reply in a conversation.
    talk_closeness: int
    hazard: Hazard
    money: Money
    # Days a prompt stays open before its default choice (an event may set its own).
    timeout_days: int
    # Days between random-event checks where no pace table is given.
    check_min_days: int
    check_max_days: int
    # Pace by stage id (every stage, or none: then one day per step and the
    # check_min_days..check_max_days gap everywhere).
    pace: dict[str, Pace] = attrs.Factory(dict)
    # Day of a newborn's first random-event check (0: a gap of the first stage).
    first_check_days: int = 0
    # The most game days one step may run, fast-forward included.
    max_step_days: int = 50
    expenses: dict[str, int] = attrs.Factory(dict)
    # Share of a salary that goes on tax and a lifestyle that grows with income,
    # paid day by day on top of the stage's expenses.
    tax: float = 0.0
    drift: tuple[Drift, ...] = ()
    settle: tuple[Settle, ...] = ()
    family: tuple[FamilyMember, ...] = ()
    start_money: int = 0
    # Stat id -> when the player is warned about it.
    warnings: dict[str, Threshold] = attrs.Factory(dict)


@attrs.frozen
class Names:
    first: tuple[str, ...] = attrs.field(converter=_tuple)
    last: tuple[str, ...] = attrs.field(converter=_tuple)


@attrs.frozen
class Achievement:
    """A mark an ended life earns on its end-of-life page (achievements.toml).
    Every condition it sets must hold over the life as it ended; it must set
    at least one."""

    id: str
    label: str
    # Reached this age (years).
    min_age: float = 0.0
    # Ended with one of these educations (e.g. a degree).
    education: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    # Held all of ``flags`` and at least one of ``any_flags`` at the end.
    flags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    any_flags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    # Had someone of each of these roles in the life (alive or gone).
    npc_roles: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    # Money at the end at least this.
    min_money: int | None = None
    # The best-paid job held paid at least this a year.
    min_salary: int | None = None
    # Money never went below zero.
    debt_free: bool = False
    source: str = ""


@attrs.frozen
class Content:
    """All content, validated and cross-checked. Built by :func:`baolife.content.load`."""

    world: World
    names: Names
    events: dict[str, Event]
    actions: dict[str, Action]
    jobs: dict[str, Job]
    levels: dict[str, Level]
    personas: dict[str, Persona]
    majors: dict[str, Major] = attrs.Factory(dict)
    flags: dict[str, Flag] = attrs.Factory(dict)
    achievements: dict[str, Achievement] = attrs.Factory(dict)
    # personas.toml [[default_lines]]: what any persona says when none of its own lines fit.
    default_lines: tuple[Lines, ...] = ()
    templates: dict[str, Template] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def stage_order(self) -> list[str]:
        """Stage names from the youngest to the oldest."""
        return [name for name, _ in sorted(self.world.stages.items(), key=lambda kv: kv[1])]

    def template(self, text: str) -> Template:
        """The compiled template of a content string (compiled once, at load)."""
        tpl = self.templates.get(text)
        if tpl is None:
            tpl = self.templates[text] = Template(text)
        return tpl
