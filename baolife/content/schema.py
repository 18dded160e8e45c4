"""The shape of game content: life events, actions, jobs, education, NPC
personas and the world's rules, as frozen attrs classes.

Content is data (TOML files next to this module); nothing in it is code.
Conditions and effects are closed sets of named fields, checked when the
content is loaded, so a typo in a file is an error at start, not a surprise
in play. Ages in conditions are in game years; durations are in game days.
"""

from __future__ import annotations

from string import Template

import attrs

STAT_NAMES = ("health", "happiness", "smarts", "looks")


def _tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)  # type: ignore[arg-type]


@attrs.frozen
class Conditions:
    """When something can happen. Every listed condition must hold."""

    min_age: float = 0.0
    max_age: float = 1000.0
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
    # paying at least half the best-paid one, the better paid the likelier.
    job: str = ""
    promote: bool = False
    education: str = ""
    # A major id: enrol in its level with that major; "none": forget the major.
    major: str = ""
    npc_add: tuple[NpcAdd, ...] = ()
    npc: tuple[NpcChange, ...] = ()
    schedule: tuple[ScheduleRef, ...] = ()
    die: str = ""


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
    when: Conditions = Conditions()
    cost: int = 0
    cooldown_days: int = 0
    effects: Effects = Effects()
    outcomes: tuple[Outcome, ...] = ()
    source: str = ""


@attrs.frozen
class Job:
    id: str
    title: str
    salary: int
    when: Conditions = Conditions()
    promotes_to: str = ""
    promote_after_years: float = 3.0
    # Chance per game year of being fired; raised by low happiness/smarts in the engine.
    fire_rate: float = 0.02
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
    the player holds it (upkeep of a house, the toll of smoking, a pension)."""

    id: str
    label: str
    kind: str
    yearly: Effects = Effects()
    source: str = ""


FLAG_KINDS = ("trait", "habit", "illness", "asset", "life")


@attrs.frozen
class Persona:
    """How an NPC speaks, for the LLM prompt and the scripted provider."""

    id: str
    roles: tuple[str, ...] = attrs.field(converter=_tuple)
    traits: str
    manner: str
    greetings: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    replies: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    questions: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
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

    base: float = 0.0001
    growth: float = 0.085
    health_scale: float = 0.03
    infant: float = 0.005
    npc_base: float = 0.0001
    npc_growth: float = 0.085


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
class World:
    """Rules of the world that are data rather than code."""

    stages: dict[str, float]
    check_min_days: int = 20
    check_max_days: int = 50
    timeout_days: int = 20
    expenses: dict[str, int] = attrs.Factory(dict)
    # Share of a salary that goes on tax and a lifestyle that grows with income,
    # paid day by day on top of the stage's expenses.
    tax: float = 0.0
    hazard: Hazard = Hazard()
    drift: tuple[Drift, ...] = ()
    settle: tuple[Settle, ...] = ()
    family: tuple[FamilyMember, ...] = ()
    start_money: int = 0


@attrs.frozen
class Names:
    first: tuple[str, ...] = attrs.field(converter=_tuple)
    last: tuple[str, ...] = attrs.field(converter=_tuple)


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
