"""The save format: versioned JSON through cattrs, small and exact."""

from __future__ import annotations

import random
from collections.abc import Set as AbstractSet

import cattrs
import orjson
import pytest

from baolife.content.schema import Content
from baolife.model import SCHEMA_VERSION, SaveError, dump_player, load_player
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
