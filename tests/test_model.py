"""The save format: versioned JSON through cattrs, small and exact."""

from __future__ import annotations

import random
from collections.abc import Set as AbstractSet

import cattrs
import orjson
import pytest

from baolife.content.schema import Content
from baolife.model import ONCE, SCHEMA_VERSION, SaveError, Story, dump_player, load_player
from baolife.tick.engine import World


def test_a_lived_life_round_trips_exactly_and_stays_small(content: Content) -> None:
    world = World(content, day_ticks=1, year_days=365, rng=random.Random(5))
    player = world.rules.new_life(42, "Bao Nguyen", 3)
    world.join(player, 0)
    player.flags.update({"b", "a"})
    for tick in range(1, 40 * 365):
        world.advance(tick)
        world.take_output()
        if not player.alive:
            break
    data = dump_player(player)
    doc = orjson.loads(data)
    assert doc["v"] == SCHEMA_VERSION
    assert doc["player"]["flags"] == sorted(player.flags)
    assert load_player(data) == player
    # Mostly the story (LIMITS.story lines with their ages, ~8 KB) and one past life.
    assert len(data) < 16_000
    # The fields handed to orjson as they are make the document cattrs makes item by item.
    plain = cattrs.Converter(forbid_extra_keys=False, unstruct_collection_overrides={AbstractSet: sorted})
    plain.register_unstructure_hook(Story, lambda story: [[age, text] for age, text in story])
    assert player.story and player.lives and player.cooldowns and player.lives[0].family
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
