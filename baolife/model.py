"""Player state and its save format.

The classes here are the whole saved state of one player's current life.
They hold data only; the rules that change them live in :mod:`baolife.tick`.
Every list a player can grow has a cap in :data:`LIMITS`, so a save stays a
few KB however long a life runs.

Saves are versioned JSON: ``{"v": SCHEMA_VERSION, "player": {...}}`` made by
one cattrs converter (:func:`dump_player` / :func:`load_player`). Older
versions are upgraded step by step by :data:`_UPGRADES` when loaded.

Lives read from saves are kept compact (issue 15: memory per logged-in
player): the story and key moments as a :class:`Story` (ages in an array,
texts interned), an NPC's remembered turns as a :class:`Memory` (their JSON),
and the words every save repeats (NPC names, roles,
personas, flags, content ids, cooldown ids, :data:`ONCE`) as one shared
object each; the bytes saved are the same.

One piece: the classes of the save and the one converter that writes and
reads them, whose hooks are made for those classes (the story's form, which
strings are shared); split, each half would have to know the other's.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar, overload

import attrs
import cattrs
import orjson

__all__ = [
    "LIMITS",
    "MAX_AGE_YEARS",
    "Memory",
    "ONCE",
    "SCHEMA_VERSION",
    "STAT_MAX",
    "STAT_MIN",
    "STAT_NAMES",
    "Npc",
    "PastLife",
    "PastLives",
    "Player",
    "Prompt",
    "Scheduled",
    "Stats",
    "Story",
    "Turn",
    "SaveError",
    "dump_player",
    "load_player",
]

SCHEMA_VERSION = 2
# The fields of :class:`Stats`, in the order the rules go through them (a
# seed replays only if that order stays); content names stats by these.
STAT_NAMES = ("health", "happiness", "smarts", "looks")
STAT_MIN, STAT_MAX = 0, 100
# The oldest age (game years) the game is built for, which no life reaches:
# the rules' day tables and the death hazard's table end there (older ages
# use their last entry), the event index shares one bucket past it, and
# ``baolife simulate`` cuts a life still going there off as unfinished.
MAX_AGE_YEARS = 130
# Cooldown value of once-per-life events (``Player.cooldowns``): a day no
# life reaches. Saves read back share this one int object (most of a grown
# life's cooldowns are once-per-life ones).
ONCE = 1 << 40


@attrs.frozen
class Limits:
    """Caps of every per-player list."""

    feed: int = 30
    # The life story kept on the server ([age_days, text] lines), and apart
    # from it the key moments (jobs, schooling, family, assets, illness) that
    # outlive the story's roll-over and make the end-of-life page.
    story: int = 200
    story_chars: int = 200
    moments: int = 24
    # Past lives kept in the save (newest first) and key moments per past life.
    lives: int = 20
    life_moments: int = 12
    prompts: int = 3
    npcs: int = 40
    npc_memory: int = 20
    scheduled: int = 16
    summary_chars: int = 400
    # Characters of one remembered turn (all the NPC prompt uses of it).
    turn_chars: int = 300


LIMITS = Limits()


class SaveError(Exception):
    """A saved document that cannot be read back into a player."""


class Story(Sequence[tuple[int, str]]):
    """Lines ``(age_days, text)``, oldest first: a life's story or its key
    moments. Reads as a list of tuples (an index gives a line, a slice a list
    of lines, iterating gives lines) and grows by :meth:`append`, but keeps
    the ages in an array of C ints and the texts in a list: about 12 bytes a
    line where a list of tuples holds about 100 (the tuple, the age's int
    object, the pointer). The story was most of a grown life's memory
    (issue 15). A save writes it as the list of ``[age_days, text]`` it is."""

    __slots__ = ("_ages", "_texts")
    __hash__: ClassVar[None]  # type: ignore[assignment]

    def __init__(self, lines: Iterable[tuple[int, str]] = ()) -> None:
        # An age too large for a C int (only a hand-made save has one) turns
        # the array into a list of ints.
        self._ages: array[int] | list[int] = array("i")
        self._texts: list[str] = []
        for age, text in lines:
            self.add(age, text)

    @classmethod
    def of(cls, ages: list[int], texts: list[str]) -> Story:
        """The story of these ages and texts (two lists of one length, kept)."""
        story = cls()
        try:
            story._ages = array("i", ages)
        except OverflowError:
            story._ages = ages
        story._texts = texts
        return story

    def add(self, age: int, text: str, most: int = 0) -> None:
        """Append the line ``(age, text)``; with ``most``, then drop the
        oldest lines beyond that many (one call for the tick's story line)."""
        try:
            self._ages.append(age)
        except OverflowError:
            self._ages = [*self._ages, age]
        texts = self._texts
        texts.append(text)
        if most and len(texts) > most:
            del self._ages[: len(texts) - most]
            del texts[: len(texts) - most]

    def rows(self, start: int | None = None, end: int | None = None) -> list[list[Any]]:
        """Lines ``start`` to ``end`` (as a slice) as ``[age_days, text]`` lists, the wire's form."""
        return [[age, text] for age, text in zip(self._ages[start:end], self._texts[start:end], strict=True)]

    def append(self, line: tuple[int, str]) -> None:
        """Append ``line``, as a list of lines does."""
        self.add(*line)

    def lines(self) -> list[tuple[int, str]]:
        """Every line as a list of tuples (what a save writes)."""
        return list(zip(self._ages, self._texts, strict=True))

    def __len__(self) -> int:
        return len(self._texts)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return zip(self._ages, self._texts, strict=True)

    @overload
    def __getitem__(self, index: int) -> tuple[int, str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, str]]: ...
    def __getitem__(self, index: int | slice) -> tuple[int, str] | list[tuple[int, str]]:
        if isinstance(index, slice):
            return list(zip(self._ages[index], self._texts[index], strict=True))
        return (self._ages[index], self._texts[index])

    def __delitem__(self, index: int | slice) -> None:
        del self._ages[index]
        del self._texts[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Story | list):
            return self.lines() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Story({self.lines()!r})"


@attrs.define(slots=True)
class Stats:
    health: int = 50
    happiness: int = 50
    smarts: int = 50
    looks: int = 50


@attrs.define(slots=True)
class Turn:
    """One line of a conversation: ``who`` is ``"player"`` or ``"npc"``."""

    who: str
    text: str


# The JSON of a memory with no turns, shared by every such memory.
_NO_TURNS = b"[]"


def _sized(data: bytes) -> bytes:
    """A copy of ``data`` that holds only its bytes. orjson's result keeps
    the whole buffer it wrote into: 4 KB at least, and the buffer doubles as
    it fills (a 12 KB save sat in 32 KB, on average 44 KB a save in flight
    at 3,000 players of every age). What is kept for a while (an NPC's
    memory for a life, a save until the store has it) is copied to its size;
    a frame is formatted into new bytes anyway (:func:`~baolife.protocol.encode_frame`)."""
    return bytes(memoryview(data))


def _turns_json(rows: list[dict[str, str]]) -> bytes:
    """``rows`` as JSON, in bytes of their size."""
    return _sized(orjson.dumps(rows)) if rows else _NO_TURNS


class Memory(Sequence[Turn]):
    """An NPC's remembered turns, oldest first, kept as the JSON array a save
    writes of them (``[{"who": ..., "text": ...}, ...]``, one bytes object).
    Reads as a list of :class:`Turn` (an index gives a turn, a slice a list,
    iterating gives turns; each read decodes) and grows by :meth:`add`. Turns
    are read only when the player talks to that NPC or looks back at the
    talk, and written with every save; as objects, 40 short turns were about
    6 KB of a grown life's 15 KB read back (a Turn, its text, a list slot
    each: about 150 bytes a turn), as JSON they are about 50 bytes a turn,
    and a save embeds them as they are (issue 15; docs/BENCHMARKS.md)."""

    __slots__ = ("_count", "_json")
    __hash__: ClassVar[None]  # type: ignore[assignment]

    def __init__(self, turns: Iterable[Turn] = ()) -> None:
        rows = [{"who": turn.who, "text": turn.text} for turn in turns]
        self._json = _turns_json(rows)
        self._count = len(rows)

    @classmethod
    def of_rows(cls, rows: list[dict[str, str]]) -> Memory:
        """The memory of these ``{"who", "text"}`` rows (str values)."""
        memory = cls()
        memory._json, memory._count = _turns_json(rows), len(rows)
        return memory

    def add(self, turn: Turn, most: int) -> list[Turn]:
        """Append ``turn``, then drop the oldest turns beyond ``most``; returns those dropped."""
        if self._count < most:
            row = orjson.dumps({"who": turn.who, "text": turn.text})
            self._json = b"[" + row + b"]" if not self._count else self._json[:-1] + b"," + row + b"]"
            self._count += 1
            return []
        rows = orjson.loads(self._json)
        rows.append({"who": turn.who, "text": turn.text})
        excess = len(rows) - most
        dropped = [Turn(r["who"], r["text"]) for r in rows[:excess]]
        del rows[:excess]
        self._json, self._count = _turns_json(rows), len(rows)
        return dropped

    def rows(self) -> list[dict[str, str]]:
        """The turns as ``{"who", "text"}`` dicts: the wire's and the save's form."""
        rows: list[dict[str, str]] = orjson.loads(self._json)
        return rows

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The turns as ``(who, text)`` pairs (what an NPC job carries)."""
        return tuple((r["who"], r["text"]) for r in orjson.loads(self._json))

    def fragment(self) -> orjson.Fragment:
        """The turns' JSON, for orjson to write as it is."""
        return orjson.Fragment(self._json)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Turn]:
        return (Turn(r["who"], r["text"]) for r in orjson.loads(self._json))

    @overload
    def __getitem__(self, index: int) -> Turn: ...
    @overload
    def __getitem__(self, index: slice) -> list[Turn]: ...
    def __getitem__(self, index: int | slice) -> Turn | list[Turn]:
        turns = list(self)
        return turns[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Memory):
            return self._json == other._json
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"Memory({list(self)!r})"


def _memory(value: Memory | Iterable[Turn]) -> Memory:
    """A memory of ``value`` (a Memory as it is, else the turns of an iterable)."""
    return value if isinstance(value, Memory) else Memory(value)


# Converters run when an object is made, not when a field is set
# (``on_setattr=NO_OP``): one that ran on setting would give the class attrs'
# own __setattr__, a Python call for every field the tick sets (13 % more
# time a tick with one on Player; issue 15, docs/BENCHMARKS.md).
@attrs.define(slots=True, on_setattr=attrs.setters.NO_OP)
class Npc:
    """A person in the player's life. ``age_offset`` is the NPC's age minus the
    player's, in days, so the NPC ages with the player without a tick of its own."""

    id: int
    name: str
    role: str
    closeness: int
    persona: str
    age_offset: int = 0
    alive: bool = True
    # Made from a list of turns too (turned into a Memory); set, it must be one.
    memory: Memory = attrs.field(factory=Memory, converter=_memory)
    summary: str = ""

    def view(self) -> dict[str, Any]:
        """The NPC as the client sees it (the ``npc`` op and the snapshot)."""
        return {"id": self.id, "name": self.name, "role": self.role, "closeness": self.closeness, "alive": self.alive}


@attrs.define(slots=True)
class Prompt:
    """An open life event waiting for a choice until the day ``expires_day``."""

    id: int
    event: str
    opened_day: int
    expires_day: int
    # Values of template fields fixed when the prompt opened (e.g. an NPC name).
    bind: dict[str, str] = attrs.Factory(dict)


@attrs.define(slots=True)
class Scheduled:
    """A follow-up event due on a day of this life. ``bind`` keeps the template
    values (the NPC) of the event that scheduled it."""

    day: int
    event: str
    bind: dict[str, str] = attrs.Factory(dict)


@attrs.define(slots=True)
class PastLife:
    """The summary of an ended life, kept in the save across new lives.
    Compact on purpose: ``family`` is ``(name, role, alive)``, ``moments``
    ``(age_days, text)``; achievements are content ids (labels are looked up
    when shown). ``education`` is the education id the life ended with."""

    life: int
    name: str
    age_days: int
    cause: str
    education: str
    job: str | None = None
    best_job: str | None = None
    money: int = 0
    family: list[tuple[str, str, bool]] = attrs.Factory(list)
    moments: Story = attrs.Factory(Story)
    achievements: list[str] = attrs.Factory(list)


class PastLives(Sequence[PastLife]):
    """An account's ended lives, newest first, each kept as the JSON a save
    writes of it (one bytes object a life). Reads as a list of
    :class:`PastLife` (an index gives a life, a slice a list, iterating gives
    lives; each read decodes) and grows by :meth:`keep`. A past life is read
    only when the player looks back at their lives, and written with every
    save; as objects one was about 1.8 KB (its family's tuples and names, its
    moments), as JSON about 1 KB, and an account keeps up to
    ``LIMITS.lives`` of them (issue 15; docs/BENCHMARKS.md)."""

    __slots__ = ("_items",)
    __hash__: ClassVar[None]  # type: ignore[assignment]

    def __init__(self, lives: Iterable[PastLife] = ()) -> None:
        self._items: list[bytes] = [_past_json(life) for life in lives]

    def keep(self, past: PastLife, most: int) -> None:
        """File ``past`` first, then drop the oldest lives beyond ``most``."""
        items = self._items
        items.insert(0, _past_json(past))
        del items[most:]

    def fragment(self) -> orjson.Fragment:
        """The lives' JSON array, for orjson to write as it is."""
        return orjson.Fragment(b"[" + b",".join(self._items) + b"]")

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[PastLife]:
        return (_past_life(item) for item in self._items)

    @overload
    def __getitem__(self, index: int) -> PastLife: ...
    @overload
    def __getitem__(self, index: slice) -> list[PastLife]: ...
    def __getitem__(self, index: int | slice) -> PastLife | list[PastLife]:
        if isinstance(index, slice):
            return [_past_life(item) for item in self._items[index]]
        return _past_life(self._items[index])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PastLives):
            return self._items == other._items
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"PastLives({list(self)!r})"


def _past_json(past: PastLife) -> bytes:
    """``past`` as a save writes it, in bytes of their size."""
    return _sized(orjson.dumps(_converter.unstructure(past)))


def _past_life(item: bytes) -> PastLife:
    """A past life read back from its JSON (written by :func:`_past_json`)."""
    past: PastLife = _past_reader.structure(orjson.loads(item), PastLife)
    return past


def _past_lives(value: PastLives | Iterable[PastLife]) -> PastLives:
    """The past lives of ``value`` (PastLives as they are, else the lives of an iterable)."""
    return value if isinstance(value, PastLives) else PastLives(value)


@attrs.define(slots=True, on_setattr=attrs.setters.NO_OP)  # see Npc
class Player:
    """The saved state of one player's current life.

    ``id`` is the account id; everything else belongs to the life and is
    replaced by ``new_life``. Days are the player's age in game days; the
    player's clock runs only while they are connected.
    """

    id: int
    name: str
    life: int = 1
    alive: bool = True
    age_days: int = 0
    stats: Stats = attrs.Factory(Stats)
    money: int = 0
    job: str | None = None
    job_since: int = 0
    education: str = "none"
    edu_since: int = 0
    # University major id ("" for none); see baolife/content/education.toml.
    major: str = ""
    flags: set[str] = attrs.Factory(set)
    npcs: list[Npc] = attrs.Factory(list)
    prompts: list[Prompt] = attrs.Factory(list)
    # The life story, oldest first: (age_days, text), at most LIMITS.story.
    story: Story = attrs.Factory(Story)
    # Key moments of this life, oldest first, at most LIMITS.moments.
    moments: Story = attrs.Factory(Story)
    scheduled: list[Scheduled] = attrs.Factory(list)
    # event or action id -> first day it may happen again (once-per-life: a huge day)
    cooldowns: dict[str, int] = attrs.Factory(dict)
    next_check: int = 0
    next_prompt_id: int = 1
    next_npc_id: int = 1
    cause_of_death: str | None = None
    surname: str = ""
    # Fast-forward factor the player chose (1, 2 or 5): while no prompt waits,
    # each step runs this many times the stage's pace.
    speed: int = 1
    # The best-paid job of this life (id) and the lowest money it had, for
    # the end-of-life summary and its achievements.
    best_job: str | None = None
    low_money: int = 0
    # Ended lives of this account, newest first, at most LIMITS.lives. Kept by new_life.
    # Made from a list of lives too (turned into PastLives); set, it must be one.
    lives: PastLives = attrs.field(factory=PastLives, converter=_past_lives)

    @property
    def feed(self) -> list[str]:
        """The newest lines of the story (at most ``LIMITS.feed``), as the
        snapshot's ``feed`` has always carried them."""
        return [text for _age, text in self.story[-LIMITS.feed :]]

    @property
    def first_name(self) -> str:
        """The name without the family surname ("Bao" of "Bao Nguyen")."""
        words = self.name.split()
        if len(words) >= 2 and words[-1] == self.surname:
            return " ".join(words[:-1])
        return self.name

    def npc(self, npc_id: int) -> Npc | None:
        """The NPC with this id, or None."""
        for npc in self.npcs:
            if npc.id == npc_id:
                return npc
        return None

    def prompt(self, prompt_id: int) -> Prompt | None:
        """The pending prompt with this id, or None."""
        for prompt in self.prompts:
            if prompt.id == prompt_id:
                return prompt
        return None


_converter = cattrs.Converter(forbid_extra_keys=False, unstruct_collection_overrides={AbstractSet: sorted})
# Fields that hold only JSON's own values (lists, tuples, dicts of str, int
# and bool) go to orjson as they are: the same document, without cattrs
# copying them item by item (the story alone is most of a save's bytes, and
# saving is most of a busy server's work; see docs/BENCHMARKS.md, issue 15).
# A :class:`Story` goes as its list of (age_days, text) tuples, made in C.
_PLAIN = frozenset(
    {
        list[tuple[str, str, bool]],
        list[str],
        dict[str, int],
        dict[str, str],
    }
)
_converter.register_unstructure_hook_func(lambda t: t in _PLAIN, lambda value: value)
_converter.register_unstructure_hook(Story, Story.lines)


def _story(value: Any, _type: Any) -> Story:
    """Story lines and moments read back, their texts interned: most lines
    are the content's fixed sentences ("You worked up a sweat."), so lives
    loaded from saves share one copy of each instead of one per line (a
    grown life's story is most of its memory; see docs/BENCHMARKS.md)."""
    return _story_lines(value, sys.intern)


def _story_lines(value: Any, keep: Callable[[str], str]) -> Story:
    if not isinstance(value, list):
        raise TypeError(f"story lines must be a list, not {type(value).__name__}")
    ages: list[int] = []
    texts: list[str] = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"a story line must be [age_days, text], not {item!r:.60}")
        age, text = item
        if not isinstance(age, int) or isinstance(age, bool) or not isinstance(text, str):
            raise TypeError(f"a story line must be [age_days, text], not {item!r:.60}")
        ages.append(age)
        texts.append(keep(text))
    return Story.of(ages, texts)


_converter.register_structure_hook(Story, _story)


def _shared_str(value: Any, _type: Any) -> str:
    """Strings read back interned (NPC names, roles and personas, flags,
    content ids, past lives' family): the same few hundred words recur in
    every save, and each would otherwise be a copy per life. ``str(value)`` is
    what cattrs makes of a string field by default."""
    return sys.intern(str(value))


def _cooldowns(value: Any, _type: Any) -> dict[str, int]:
    """Cooldowns read back with interned ids, and :data:`ONCE` as the one
    shared int; other values as cattrs reads an int (``int(value)``)."""
    if not isinstance(value, dict):
        raise TypeError(f"cooldowns must be an object, not {type(value).__name__}")
    return {sys.intern(str(k)): ONCE if v == ONCE else int(v) for k, v in value.items()}


_converter.register_structure_hook(str, _shared_str)
_converter.register_structure_hook_func(lambda t: t == dict[str, int], _cooldowns)
# Texts written by the player or the AI are each of one life: interning them
# would only add them to the interpreter's table.
_own_text = cattrs.gen.override(struct_hook=lambda value, _type: str(value))
_converter.register_structure_hook(Turn, cattrs.gen.make_dict_structure_fn(Turn, _converter, text=_own_text))


def _memory_rows(value: Any, _type: Any) -> Memory:
    """An NPC's turns read back: ``{"who", "text"}`` objects (other keys
    ignored, values read as strings, as cattrs reads a :class:`Turn`)."""
    if not isinstance(value, list):
        raise TypeError(f"an NPC's memory must be a list, not {type(value).__name__}")
    rows: list[dict[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or "who" not in item or "text" not in item:
            raise ValueError(f"a remembered turn must be an object with who and text, not {item!r:.60}")
        rows.append({"who": str(item["who"]), "text": str(item["text"])})
    return Memory.of_rows(rows)


_converter.register_structure_hook(Memory, _memory_rows)
_converter.register_unstructure_hook(Memory, Memory.fragment)
_converter.register_structure_hook(Npc, cattrs.gen.make_dict_structure_fn(Npc, _converter, summary=_own_text))


# Past lives are read as they were written: nothing interned, since they
# are kept as JSON and read only for a moment (their names are each of one
# account, and each one interned would stay in the interpreter's table).
_past_reader = cattrs.Converter(forbid_extra_keys=False)
_past_reader.register_structure_hook(Story, lambda value, _type: _story_lines(value, str))


def _read_lives(value: Any, _type: Any) -> PastLives:
    """Past lives read back: each read as a :class:`PastLife` (so a bad one
    fails the load, with its place in the error), then kept as its JSON."""
    lives: list[PastLife] = _past_reader.structure(value, list[PastLife])
    return PastLives(lives)


_converter.register_structure_hook(PastLives, _read_lives)
_converter.register_unstructure_hook(PastLives, PastLives.fragment)


def _upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    version = doc.get("v")
    if not isinstance(version, int) or version < 1:
        raise SaveError(f"save has no valid schema version: {version!r}")
    if version > SCHEMA_VERSION:
        raise SaveError(f"save schema {version} is newer than this server ({SCHEMA_VERSION})")
    for step in range(version, SCHEMA_VERSION):
        doc = _UPGRADES[step](doc)
    return doc


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 2 keeps the story with ages: the old feed lines become story
    lines at the current age; moments and past lives start empty."""
    player = dict(doc.get("player") or {})
    age = player.get("age_days", 0)
    feed = player.pop("feed", None) or []
    if isinstance(feed, list):
        player["story"] = [[age, line] for line in feed if isinstance(line, str)]
    money = player.get("money", 0)
    if isinstance(money, int) and money < 0:
        player["low_money"] = money
    return {**doc, "v": 2, "player": player}


# Upgrade functions from version N to N+1, keyed by N. Version 1 is the first.
_UPGRADES: dict[int, Any] = {1: _v1_to_v2}


def dump_player(player: Player) -> bytes:
    """The save document of ``player`` (compact JSON bytes, held in their size)."""
    return _sized(orjson.dumps({"v": SCHEMA_VERSION, "player": _converter.unstructure(player)}))


def load_player(data: bytes | str) -> Player:
    """Read a save document written by any known schema version.

    Raises:
        SaveError: not JSON, an unknown version, or fields of the wrong shape.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SaveError(f"save is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SaveError("save is not a JSON object")
    doc = _upgrade(doc)
    try:
        return _converter.structure(doc["player"], Player)
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as exc:
        detail = "; ".join(cattrs.transform_error(exc)) if isinstance(exc, cattrs.BaseValidationError) else str(exc)
        raise SaveError(f"save does not match schema {SCHEMA_VERSION}: {detail}") from None
