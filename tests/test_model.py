"""The save format: versioned JSON through cattrs, small and exact."""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import TypeVar

import cattrs
import orjson
import pytest

from baolife.content.schema import Content
from baolife.model import (
    LIMITS,
    ONCE,
    SCHEMA_VERSION,
    Memory,
    Npc,
    PastLife,
    PastLives,
    Player,
    SaveError,
    Story,
    Turn,
    dump_player,
    load_player,
)
from baolife.tick.engine import World
from tests.tick.harness import Harness

T = TypeVar("T")


def test_a_lived_life_round_trips_exactly_and_stays_small(content: Content) -> None:
    harness = Harness(content, year_days=365, seed=5)  # it keeps the NPC jobs the world submits
    world = harness.world
    player = world.rules.new_life(42, "Bao Nguyen", 3)
    world.join(player, 0)
    player.flags.update({"b", "a"})
    # Talks, answered at once: the NPCs remember them (some past the cap).
    harness.live(
        player,
        40 * 365,
        talk_every=50,
        say=lambda day, living: (living[day // 50 % min(2, len(living))], f'I said "{day}"\n\u00e9 \U0001f600'),
        reply=lambda job: f"You said {job.text}",
    )
    data = dump_player(player)
    doc = orjson.loads(data)
    assert doc["v"] == SCHEMA_VERSION
    assert doc["player"]["flags"] == sorted(player.flags)
    assert load_player(data) == player
    # Mostly the story (LIMITS.story lines with their ages, ~8 KB), one past
    # life and the talks the NPCs remember (at most LIMITS.npc_memory turns each).
    assert len(data) < 24_000
    # The fields handed to orjson as they are make the document cattrs makes item by item.
    plain = cattrs.Converter(forbid_extra_keys=False, unstruct_collection_overrides={AbstractSet: sorted})
    plain.register_unstructure_hook(Story, lambda story: [[age, text] for age, text in story])
    plain.register_unstructure_hook(Memory, lambda memory: [{"who": t.who, "text": t.text} for t in memory])
    plain.register_unstructure_hook(PastLives, lambda lives: [plain.unstructure(life) for life in lives])
    assert player.story and player.lives and player.cooldowns and player.lives[0].family
    assert any(len(npc.memory) == 20 for npc in player.npcs) and any(npc.summary for npc in player.npcs)
    assert data == orjson.dumps({"v": SCHEMA_VERSION, "player": plain.unstructure(player)})


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"player": {}}', "no valid schema version"),
        (b'{"v": 999, "player": {}}', "newer than this server"),
        (b'{"v": 1, "player": {"name": "x"}}', "does not match schema"),
        (b'{"v": 1, "player": {"id": 1, "name": "x", "stats": {"health": "high"}}}', "does not match schema"),
        (b'{"v": 2, "player": {"id": 1, "name": "x", "story": [[3, "a", "b"]]}}', r"does not match.* @ \$\.story"),
        (b'{"v": 2, "player": {"id": 1, "name": "x", "story": [["3", "a"]]}}', r"does not match.* @ \$\.story"),
        (b'{"v": 2, "player": {"id": 1, "name": "x", "moments": {"a": 1}}}', r"does not match.* @ \$\.moments"),
        (
            b'{"v": 2, "player": {"id": 1, "name": "x", "npcs": [{"id": 2, "name": "y", "role": "friend", '
            b'"closeness": 1, "persona": "p", "memory": [{"who": "npc"}]}]}}',
            r"does not match.* @ \$\.npcs\[0\]\.memory",
        ),
        (
            b'{"v": 2, "player": {"id": 1, "name": "x", "npcs": [{"id": 2, "name": "y", "role": "friend", '
            b'"closeness": 1, "persona": "p", "memory": {"who": "npc", "text": "hi"}}]}}',
            r"does not match.* @ \$\.npcs\[0\]\.memory",
        ),
    ],
)
def test_unreadable_saves_raise_save_error(data: bytes, says: str) -> None:
    with pytest.raises(SaveError, match=says):
        load_player(data)


def test_a_version_1_save_loads_with_its_feed_as_story_lines_at_the_current_age() -> None:
    v1 = {
        "v": 1,
        "player": {
            "id": 7,
            "name": "Bao Berg",
            "surname": "Berg",
            "age_days": 900,
            "money": -50,
            "feed": ["You were born. Welcome to the world, Bao.", "You turned 1."],
        },
    }
    player = load_player(orjson.dumps(v1))
    assert player.story == [(900, "You were born. Welcome to the world, Bao."), (900, "You turned 1.")]
    assert player.feed == v1["player"]["feed"]
    assert player.moments == [] and player.lives == [] and player.low_money == -50
    assert player.first_name == "Bao"
    again = orjson.loads(dump_player(player))
    assert again["v"] == SCHEMA_VERSION == 2 and "feed" not in again["player"]


def test_lives_read_from_saves_share_one_copy_of_each_story_text(content: Content) -> None:
    # Most story lines are the content's fixed sentences: a grown life's story
    # is most of its memory, so a thousand lives must not hold a thousand copies.
    world = World(content, day_ticks=1, year_days=365, rng=random.Random(9))
    player = world.rules.new_life(1, "Bao Nguyen", 1)
    world.join(player, 0)
    for tick in range(1, 3 * 365):
        world.advance(tick)
        world.take_output()
    data = dump_player(player)
    a, b = load_player(data), load_player(data)
    assert a == b == player and a.story
    assert all(x[1] is y[1] for x, y in zip(a.story, b.story, strict=True))
    assert all(x[1] is y[1] for x, y in zip(a.moments, b.moments, strict=True))
    # Lines the tick tells are shared with those read back.
    assert all(x[1] is y[1] for x, y in zip(a.story, player.story, strict=True))


def test_a_story_reads_and_grows_as_a_list_of_lines() -> None:
    lines = [(0, "You were born."), (365, "You turned 1."), (400, "You napped.")]
    story = Story(lines)
    assert story == lines and list(story) == lines and len(story) == 3
    assert story[0] == (0, "You were born.") and story[-1] == (400, "You napped.")
    assert story[1:] == lines[1:] and story[-2:] == lines[-2:] and story[5:] == []
    story.append((401, "You ate."))
    del story[:2]
    assert story == [(400, "You napped."), (401, "You ate.")]
    del story[0]
    assert story == Story([(401, "You ate.")]) != [(401, "You ate!")]
    assert (401, "You ate.") in story and story.index((401, "You ate.")) == 0


def test_a_memory_reads_and_grows_as_a_list_of_turns() -> None:
    turns = [Turn("player", "Hi!"), Turn("npc", 'Hello "dear",\n\u00e9 \U0001f600 \\ \x00')]
    memory = Memory(turns)
    assert memory == turns and list(memory) == turns and len(memory) == 2 and memory
    assert memory[1] == turns[1] and memory[-1:] == turns[-1:] and Memory(turns) == memory
    assert memory.rows() == [{"who": t.who, "text": t.text} for t in turns]
    assert memory.pairs() == (("player", "Hi!"), ("npc", turns[1].text))
    assert orjson.loads(orjson.dumps({"m": memory.fragment()})) == {"m": memory.rows()}
    # Up to ``most`` turns nothing is dropped; past it the oldest go, and are returned.
    assert memory.add(Turn("player", "a"), 3) == [] and len(memory) == 3
    assert memory.add(Turn("npc", "b"), 3) == [turns[0]]
    assert memory == [turns[1], Turn("player", "a"), Turn("npc", "b")] != turns
    assert memory.add(Turn("npc", "c"), 1) == [turns[1], Turn("player", "a"), Turn("npc", "b")]
    assert memory == [Turn("npc", "c")] and len(memory) == 1
    empty = Memory()
    assert empty == [] == list(empty) and not empty and empty.pairs() == () and empty.rows() == []
    assert empty.add(Turn("player", "x"), 20) == [] and empty == [Turn("player", "x")]
    # An NPC given a list of turns holds them as a Memory.
    npc = Npc(id=1, name="Mai", role="friend", closeness=5, persona="p", memory=turns)
    assert isinstance(npc.memory, Memory) and npc.memory == turns


def test_remembered_talks_read_back_cost_about_their_text() -> None:
    # A grown life's NPCs remember up to 20 turns each; read back as objects
    # (a Turn, its text and a list slot each) a short turn cost about 150 bytes.
    player = Player(id=1, name="Bao")
    for n in range(2):
        npc = Npc(id=n, name=f"N{n}", role="friend", closeness=5, persona="p")
        for i in range(20):
            npc.memory.add(Turn("player" if i % 2 else "npc", f"How are you, friend {i}?"), 20)
        player.npcs.append(npc)
    data = dump_player(player)
    loaded, used = _held(lambda: [load_player(data) for _ in range(1000)])
    assert all(p == player for p in loaded[:3])
    npcs = [Npc(id=n, name=f"N{n}", role="friend", closeness=5, persona="p") for n in range(2)]
    empty = Player(id=1, name="Bao", npcs=npcs)
    bare, used_bare = _held(lambda: [load_player(dump_player(empty)) for _ in range(1000)])
    per_turn = (used - used_bare) / (1000 * 40)
    assert per_turn <= 80, f"{per_turn:.0f} bytes a remembered turn"
    assert len(bare) == len(loaded)


def test_a_save_holds_only_its_bytes(content: Content) -> None:
    # Saves wait for the store (thousands at a flush): orjson's own result
    # would keep the buffer it wrote into, 4 KB at least and doubling.
    world = World(content, day_ticks=1, year_days=365, rng=random.Random(3))
    players = [world.rules.new_life(pid, f"Bao {pid}", 1) for pid in range(1, 4)]
    for player in players:
        world.join(player, 0)
    for tick in range(1, 20 * 365):
        world.advance(tick)
        world.take_output()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        saves = [dump_player(players[i % 3]) for i in range(300)]
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    size = sum(len(data) for data in saves)
    assert size > 300 * 4096 // 2 and used <= size * 1.1 + 300 * 64, f"{used} bytes held for {size} bytes of saves"


def test_a_story_keeps_ages_too_large_for_an_array() -> None:
    # Only a hand-made save has them; they still load and save as they were.
    story = Story([(1, "a"), (1 << 40, "b")])
    story.append((-(1 << 50), "c"))
    assert story == [(1, "a"), (1 << 40, "b"), (-(1 << 50), "c")]
    data = orjson.dumps({"v": 2, "player": {"id": 1, "name": "x", "story": [[1 << 62, "a"], [2, "b"]]}})
    player = load_player(data)
    assert player.story == [(1 << 62, "a"), (2, "b")]
    assert dump_player(player) == dump_player(load_player(dump_player(player)))
    assert orjson.loads(dump_player(player))["player"]["story"] == [[1 << 62, "a"], [2, "b"]]


def test_a_reloaded_life_saves_the_same_bytes_and_shares_its_words(content: Content) -> None:
    world = World(content, day_ticks=1, year_days=365, rng=random.Random(11))
    for pid in (1, 2):
        world.join(world.rules.new_life(pid, f"Bao {pid}", 1), 0)
    for tick in range(1, 30 * 365):
        world.advance(tick)
        world.take_output()
    for player in world.players.values():
        data = dump_player(player)
        a, b = load_player(data), load_player(data)
        assert a == player and dump_player(a) == data
        assert a.story == player.story and a.moments == player.moments
        # Words that recur in every save are one object per process, not one per life.
        assert [n.name for n in a.npcs] and all(x.name is y.name for x, y in zip(a.npcs, b.npcs, strict=True))
        assert all(x.role is y.role and x.persona is y.persona for x, y in zip(a.npcs, b.npcs, strict=True))
        assert a.cooldowns and all(k1 is k2 for k1, k2 in zip(a.cooldowns, b.cooldowns, strict=True))
        assert all(v is ONCE for v in a.cooldowns.values() if v == ONCE)
    assert any(v == ONCE for p in world.players.values() for v in p.cooldowns.values())


def _held(make: Callable[[], T]) -> tuple[T, int]:
    """What ``make`` returns, and the bytes it holds (traced, after a collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        made = make()
        gc.collect()
        return made, tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def _past_life(account: int, life: int) -> PastLife:
    # As lives.summarize makes one: the family by name, key moments spread over the life.
    family = [(f"{first} {account}-{life}", role, k % 3 > 0) for k, (first, role) in enumerate(_KIN)]
    moments = Story((365 * k, f"You and {family[k % len(family)][0]} did thing {k}.") for k in range(12))
    return PastLife(
        life=life,
        name=f"Bao {account}-{life}",
        age_days=365 * 70 + life,
        cause="old age",
        education="university",
        job="Nurse",
        best_job="Head nurse",
        money=1000 * life,
        family=family,
        moments=moments,
        achievements=["long_life", "graduate"],
    )


_KIN = [
    ("Sam", "mother"),
    ("Lee", "father"),
    ("Kim", "sibling"),
    ("Ana", "partner"),
    ("Tom", "child"),
    ("Mia", "child"),
]


def test_past_lives_are_kept_newest_first_bounded_and_read_back_as_they_were() -> None:
    player = Player(id=1, name="Bao")
    lives = [_past_life(1, n) for n in range(1, 8)]
    for past in lives:
        player.lives.keep(past, 5)
    assert [past.life for past in player.lives] == [7, 6, 5, 4, 3]
    assert player.lives[0] == lives[6] and player.lives[1:3] == [lives[5], lives[4]]
    assert player.lives == lives[2:][::-1] and len(player.lives) == 5
    again = load_player(dump_player(player))
    assert again.lives == player.lives and again == player
    # A player made with a list of lives keeps them the same way.
    player = Player(id=1, name="Bao", lives=lives[:2])
    assert isinstance(player.lives, PastLives) and player.lives == lives[:2]
    doc = orjson.loads(dump_player(player))
    doc["player"]["lives"][1]["family"] = "nobody"
    with pytest.raises(SaveError, match=r"does not match.* @ \$\.lives\[1\]\.family"):
        load_player(orjson.dumps(doc))


def test_a_past_life_is_held_in_about_the_bytes_of_its_json() -> None:
    # An account keeps up to LIMITS.lives ended lives across its new ones; as
    # objects (a tuple and a name per family member, the moments' texts) one
    # held about twice its JSON.
    accounts = 200
    full = [
        Player(id=a, name=f"Bao {a}", lives=[_past_life(a, n) for n in range(LIMITS.lives, 0, -1)])
        for a in range(1, accounts + 1)
    ]
    saves = [dump_player(p) for p in full]
    bare_saves = [dump_player(Player(id=a, name=f"Bao {a}")) for a in range(1, accounts + 1)]
    json_bytes = sum(len(orjson.dumps(life)) for save in saves for life in orjson.loads(save)["player"]["lives"])
    del full
    # Loaded once before measuring, and kept: the names a load interns are in
    # the interpreter's table then, which would otherwise grow (by megabytes,
    # at a resize) inside one measurement or the other, as earlier tests left it.
    warm = [load_player(save) for save in bare_saves]
    loaded, used = _held(lambda: [load_player(save) for save in saves])
    bare, used_bare = _held(lambda: [load_player(save) for save in bare_saves])
    count = accounts * LIMITS.lives
    assert sum(len(p.lives) for p in loaded) == count and len(bare) == len(warm) == accounts
    per_life, json_per_life = (used - used_bare) / count, json_bytes / count
    assert per_life <= 1.15 * json_per_life, f"{per_life:.0f} bytes a past life of {json_per_life:.0f} bytes of JSON"


def test_a_life_at_every_cap_is_bounded_and_held_in_little_more_than_its_save(content: Content) -> None:
    # The most one account can make the server hold: every list at its cap
    # (model.LIMITS), every text at its longest and of its own (nothing shared).
    def full(account: int) -> Player:
        player = Player(id=account, name=f"Bao {account}")
        for n in range(1, LIMITS.npcs + 1):
            turns = [
                Turn("player" if t % 2 else "npc", (f"{account}-{n}-{t} " * 60)[: LIMITS.turn_chars])
                for t in range(LIMITS.npc_memory)
            ]
            summary = (f"{account}-{n} " * 100)[: LIMITS.summary_chars]
            player.npcs.append(Npc(n, f"N {account}-{n}", "friend", 50, "p", memory=turns, summary=summary))
        player.story = Story((d, (f"{account}-{d} " * 40)[: LIMITS.story_chars]) for d in range(LIMITS.story))
        player.moments = Story((d, f"moment {account}-{d}") for d in range(LIMITS.moments))
        player.lives = PastLives(_past_life(account, n) for n in range(LIMITS.lives, 0, -1))
        player.cooldowns = {event: ONCE for event in content.events}
        return player

    # Sixty: the texts a load interns grow the interpreter's table, by a
    # megabyte or two at a resize, which must not weigh as one life's.
    saves = [dump_player(full(account)) for account in range(1, 61)]
    loaded, used = _held(lambda: [load_player(save) for save in saves])
    held = used / len(saves)
    saved = sum(map(len, saves)) / len(saves)
    assert loaded[0] == full(1)
    # docs/SCALING.md gives these figures: the NPCs' remembered turns are most of it.
    assert saved < 360_000, f"{saved:.0f} bytes saved"
    assert held <= 1.25 * saved, f"{held:.0f} bytes held for {saved:.0f} saved"


def test_the_fields_the_tick_sets_are_set_without_a_python_call() -> None:
    # attrs gives a class whose fields convert (or validate) when set a
    # __setattr__ of its own, a Python call for every field set: the tick sets
    # ages, money and closeness millions of times (13 % more time a tick with
    # one converter on Player). The converters run when an object is made.
    for cls in (Player, Npc):
        assert "__setattr__" not in cls.__dict__, cls
    assert isinstance(Player(id=1, name="Bao", lives=[]).lives, PastLives)
    assert isinstance(Npc(id=1, name="Mai", role="friend", closeness=5, persona="p", memory=[]).memory, Memory)
