"""Memory and identity: the life story kept on the server with ages, key
moments, paging, conversations, the end-of-life summary, past lives, and
the names of a life and its family.

Core tests: no event loop. They use the tiny pack in tests/data/mini, given
more names and a few achievements where a test needs them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.content.schema import Achievement, Content, NpcAdd
from baolife.model import LIMITS, SCHEMA_VERSION, Player, dump_player, load_player
from baolife.tick import lives, story
from baolife.tick.engine import SayJob, World
from baolife.tick.family import FAMILY_ROLES, first_of
from baolife.tick.rules import Unit

MINI = Path(__file__).parent.parent / "data" / "mini"
YEAR = 12
FIRSTS = ("Ana", "Bo", "Cy", "Di", "Ed", "Fa", "Gu", "Hy", "Io", "Jo", "Ka", "Lu")
LASTS = ("Berg", "Tran", "Okafor", "Silva")


@pytest.fixture(scope="module")
def pack() -> Content:
    """The mini pack with names to choose from and achievements to earn."""
    mini = content_pkg.load(MINI)
    achievements = {
        a.id: a
        for a in (
            Achievement(id="grown", label="Grew up", min_age=1),
            Achievement(id="schooled", label="Finished school", education=("school_done",)),
            Achievement(id="loved", label="Had a mother", npc_roles=("mother",)),
            Achievement(id="flagged", label="Held x", flags=("x",)),
            Achievement(id="rich", label="Kept 500", min_money=500),
            Achievement(id="worker", label="Held a job", min_salary=1),
            Achievement(id="thrifty", label="Never in debt", debt_free=True),
        )
    }
    names = attrs.evolve(mini.names, first=FIRSTS, last=LASTS)
    return attrs.evolve(mini, names=names, achievements=achievements)


class Harness:
    def __init__(self, content: Content, seed: int = 3) -> None:
        self.jobs: list[SayJob] = []
        self.world = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(seed), submit_say=self._submit)
        self.tick = 0

    def _submit(self, job: SayJob) -> bool:
        self.jobs.append(job)
        return True

    def join(self, name: str = "Ana Test") -> tuple[Player, dict[str, Any]]:
        player = self.world.rules.new_life(1, name, 1)
        self.world.join(player, self.tick)
        return player, self.world.take_output()[1][0].wire()["snapshot"]

    def step(self, *commands: wire.Command) -> list[dict[str, Any]]:
        self.tick += 1
        for cmd in commands:
            self.world.apply(1, cmd, self.tick)
        self.world.advance(self.tick)
        return [op.wire() for op in self.world.take_output().get(1, [])]

    def ask(self, cmd: wire.Command) -> list[dict[str, Any]]:
        """Apply one command without letting a day pass."""
        self.world.apply(1, cmd, self.tick)
        return [op.wire() for op in self.world.take_output().get(1, [])]

    def die(self) -> dict[str, Any]:
        ops = self.ask(wire.Act(action="die_now", ref="die"))
        return next(op for op in ops if op["op"] == "died")


def tell(h: Harness, p: Player, text: str, *, key: bool = False) -> list[Any]:
    ops: list[wire.Op] = []
    h.world.rules.feed(Unit(p, ops), text, key=key)
    return [op.wire() for op in ops]


# ----------------------------------------------------------------- the story


def test_the_story_keeps_ages_and_stays_bounded(pack: Content) -> None:
    h = Harness(pack)
    p, snap = h.join()
    assert snap["story"] == [[0, "You were born. Welcome to the world, Ana Test."]]
    assert snap["story_total"] == 1 and snap["feed"] == ["You were born. Welcome to the world, Ana Test."]
    for i in range(LIMITS.story + 50):
        p.age_days = 100 + i
        ops = tell(h, p, f"line {i}")
        assert ops == [{"op": "feed", "text": f"line {i}", "age_days": 100 + i}]
    assert len(p.story) == LIMITS.story
    assert p.story[0] == (150, "line 50") and p.story[-1] == (349, f"line {LIMITS.story + 49}")
    # The old clients' feed is the story's tail; the snapshot carries both.
    snap = h.world.snapshot(p, h.tick)
    assert snap["story_total"] == LIMITS.story
    assert snap["story"] == [list(line) for line in p.story[-story.SNAPSHOT_LINES :]]
    assert snap["feed"] == [text for _age, text in p.story[-LIMITS.feed :]]
    # A line too long for the save is cut.
    tell(h, p, "x" * 1000)
    assert len(p.story[-1][1]) == LIMITS.story_chars


def test_key_moments_outlive_the_story_and_stay_bounded(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    tell(h, p, "You got a job: Tester.", key=True)
    for i in range(LIMITS.story):
        tell(h, p, f"filler {i}")
    assert all(text != "You got a job: Tester." for _age, text in p.story)
    assert p.moments == [(0, "You got a job: Tester.")]
    for i in range(LIMITS.moments + 10):
        tell(h, p, f"moment {i}", key=True)
    assert len(p.moments) == LIMITS.moments
    # How the life began stays; so does what happened lately.
    assert p.moments[0] == (0, "You got a job: Tester.")
    assert p.moments[-1][1] == f"moment {LIMITS.moments + 9}"


def test_rules_mark_jobs_and_family_as_key_moments(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    u = Unit(p, [])
    h.world.rules.take_job(u, "tester")
    h.world.rules.add_npc(u, NpcAdd(role="mother"))
    assert p.moments == [(0, "You got a job: Tester.")]
    assert p.best_job == "tester"


def test_story_pages_count_from_the_oldest_line_kept(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    for i in range(119):
        p.age_days = i + 1
        tell(h, p, f"line {i}")
    total = len(p.story)
    assert total == 120
    newest = h.ask(wire.Story(ref="s"))
    assert newest == [{"op": "story", "lines": [list(x) for x in p.story[70:]], "first": 70, "total": 120, "ref": "s"}]
    older = h.ask(wire.Story(before=70, ref="s2"))[0]
    assert older["first"] == 20 and len(older["lines"]) == 50 and older["lines"][-1] == [69, "line 68"]
    oldest = h.ask(wire.Story(before=20))[0]
    assert oldest["first"] == 0 and oldest["lines"][0][1].startswith("You were born")
    assert h.ask(wire.Story(before=0))[0]["lines"] == []
    # Past the end counts as the end.
    assert h.ask(wire.Story(before=10_000))[0]["first"] == 70


def test_bad_pages_and_talks_are_refused_at_parse(pack: Content) -> None:
    for message, says in (
        ('{"type": "story", "before": -1, "id": 1}', "before: must not be negative"),
        ('{"type": "story", "before": "3"}', "before: must be an integer"),
        ('{"type": "story", "before": 1.5}', "before: must be an integer"),
        ('{"type": "talks"}', "npc: is required"),
        ('{"type": "new_life", "name": "   "}', "name: must not be blank"),
        ('{"type": "new_life", "name": "' + "x" * 33 + '"}', "name: must be 1-32"),
    ):
        with pytest.raises(wire.Rejected) as caught:
            wire.parse(message)
        assert caught.value.op.code == "bad_request" and says in caught.value.op.message
    assert wire.parse('{"type": "lives", "id": 2}') == wire.Lives(ref=2)
    assert wire.parse('{"type": "new_life", "name": "Mai Berg"}') == wire.NewLife(name="Mai Berg")


def test_talks_give_the_remembered_conversation(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    mother = p.npcs[0]
    h.step(wire.Say(npc=mother.id, text="Hi mom", ref="s"))
    h.world.npc_reply(1, p.life, mother.id, "s", "Hello dear.")
    h.step()
    ops = h.ask(wire.Talks(npc=mother.id, ref="t"))
    assert ops == [
        {
            "op": "talks",
            "npc": mother.id,
            "turns": [{"who": "player", "text": "Hi mom"}, {"who": "npc", "text": "Hello dear."}],
            "ref": "t",
        }
    ]
    ops = h.ask(wire.Talks(npc=999, ref="u"))
    assert [(op["op"], op["code"], op["ref"]) for op in ops] == [("error", "not_found", "u")]


def test_looking_back_works_after_death_and_changes_nothing(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    h.step()
    h.die()
    h.world.take_changed()
    before = dump_player(p)
    for cmd in (wire.Story(ref=1), wire.Talks(npc=p.npcs[0].id, ref=2), wire.Lives(ref=3)):
        ops = h.ask(cmd)
        assert [op["op"] for op in ops] == [{1: "story", 2: "talks", 3: "lives"}[cmd.ref]]
    assert h.world.take_changed() == set() and dump_player(p) == before


# ----------------------------------------------------------------- the end of a life


def test_death_sends_a_summary_with_moments_family_and_achievements(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    h.step(wire.Act(action="plan"))  # flag x
    h.world.rules.take_job(Unit(p, []), "tester")
    h.world.rules.take_job(Unit(p, []), "none")
    while p.age_days < 5 * YEAR:
        h.step()
    assert p.education == "school_done"
    died = h.die()
    summary = died["summary"]
    mother = p.npcs[0]
    assert summary == {
        "life": 1,
        "name": "Ana Test",
        "age_days": p.age_days,
        "cause": "a test",
        "education": "school_done",
        "job": None,
        "best_job": "Tester",
        "money": p.money,
        "family": [{"name": mother.name, "role": "mother", "alive": True}],
        "moments": summary["moments"],
        "achievements": summary["achievements"],
    }
    texts = [text for _age, text in summary["moments"]]
    assert texts == ["You got a job: Tester.", "You finished school."]
    earned = [a["id"] for a in summary["achievements"]]
    assert earned[:4] == ["grown", "schooled", "loved", "flagged"] and "worker" in earned
    assert {"id": "grown", "label": "Grew up"} in summary["achievements"]
    assert ("rich" in earned) == (p.money >= 500) and ("thrifty" in earned) == (p.low_money >= 0)
    assert h.ask(wire.Lives(ref="l")) == [{"op": "lives", "lives": [summary], "ref": "l"}]


def test_debt_and_money_decide_their_achievements(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    rules = h.world.rules
    rules.change_money(Unit(p, []), 1000)
    assert {"rich", "thrifty"} <= set(lives.earned(pack, p, YEAR))
    rules.change_money(Unit(p, []), -2000)
    rules.change_money(Unit(p, []), 3000)
    assert p.low_money == -500
    got = set(lives.earned(pack, p, YEAR))
    assert "rich" in got and "thrifty" not in got and "grown" not in got


def test_summary_moments_are_spread_over_the_life() -> None:
    p = Player(id=1, name="A B")
    for i in range(LIMITS.moments):
        p.moments.append((i, f"m{i}"))
    past = lives.summarize(content_pkg.load(MINI), p, YEAR)
    assert len(past.moments) == LIMITS.life_moments
    assert past.moments[0] == (0, "m0") and past.moments[-1] == (LIMITS.moments - 1, f"m{LIMITS.moments - 1}")


def test_past_lives_are_kept_newest_first_and_bounded(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    for life in range(1, LIMITS.lives + 6):
        assert p.life == life
        h.step()
        h.die()
        assert len(p.lives) == min(life, LIMITS.lives) and p.lives[0].life == life
        welcome = h.ask(wire.NewLife(ref=life))[0]
        assert welcome["snapshot"]["lives_total"] == min(life, LIMITS.lives)
    assert [past.life for past in p.lives] == list(range(LIMITS.lives + 5, 5, -1))
    shown = h.ask(wire.Lives())[0]["lives"]
    assert len(shown) == LIMITS.lives and shown[0]["life"] == LIMITS.lives + 5
    # The save stays loadable and its past lives compact.
    assert load_player(dump_player(p)) == p


# ----------------------------------------------------------------- names


def test_a_new_life_takes_the_chosen_name_or_keeps_the_first_name(pack: Content) -> None:
    h = Harness(pack)
    p, snap = h.join("Bao")
    assert snap["name"] == f"Bao {p.surname}" and snap["surname"] == p.surname in LASTS
    assert p.story[0][1] == f"You were born. Welcome to the world, Bao {p.surname}."
    old = p.surname
    h.die()
    snap = h.ask(wire.NewLife(ref=1))[0]["snapshot"]
    assert snap["name"] == f"Bao {p.surname}" and p.surname != old and p.first_name == "Bao"
    assert p.lives[0].name == f"Bao {old}" and snap["story_total"] == 1
    h.die()
    snap = h.ask(wire.NewLife(name="Mai  Ly Tran", ref=2))[0]["snapshot"]
    assert (snap["name"], snap["surname"], p.first_name) == ("Mai Ly Tran", "Tran", "Mai Ly")
    assert all(n.name.endswith(" Tran") for n in p.npcs if n.role == "mother")
    h.die()
    snap = h.ask(wire.NewLife(ref=3))[0]["snapshot"]
    assert snap["name"].startswith("Mai Ly ") and snap["surname"] != "Tran"
    assert p.lives[0].name == "Mai Ly Tran" and p.lives[1].name.startswith("Bao ")


def test_families_share_a_surname_and_never_a_first_name(content: Content) -> None:
    rules = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(0)).rules
    other_side = 0
    for seed in range(300):
        rules.rng.seed(seed)
        name = ("Bao", "Omar Okafor", "Mai Berg")[seed % 3]
        p = rules.new_life(seed, name, 1)
        u = Unit(p, [])
        for role in ("child", "child", "sibling", "partner", "friend"):
            rules.add_npc(u, NpcAdd(role=role))
        assert p.surname == (name.split()[-1] if " " in name else p.surname)
        assert p.name == f"{p.first_name} {p.surname}"
        family = [n for n in p.npcs if n.role in FAMILY_ROLES]
        firsts = [first_of(n.name) for n in family]
        assert len(set(firsts)) == len(firsts), [n.name for n in family]
        assert p.first_name not in firsts
        for n in family:
            if n.role != "grandparent":
                assert n.name.endswith(f" {p.surname}"), (n.role, n.name, p.surname)
        grand = [n for n in family if n.role == "grandparent"]
        if grand:
            assert grand[0].name.endswith(f" {p.surname}")
            other_side += sum(not g.name.endswith(f" {p.surname}") for g in grand)
    assert other_side > 0  # the other side of the family shows up


def test_npc_views_carry_an_age_that_changes_only_with_a_birthday_op(pack: Content) -> None:
    h = Harness(pack)
    p, snap = h.join()
    assert snap["npcs"][0]["age"] == 30
    seen = {n["id"]: n for n in snap["npcs"]}
    while p.age_days < 2 * YEAR + 3:
        for op in h.step():
            if op["op"] == "npc":
                seen[op["id"]] = {k: v for k, v in op.items() if k != "op"}
    assert list(seen.values()) == h.world.snapshot(p, h.tick)["npcs"]
    assert seen[p.npcs[0].id]["age"] == 32


# ----------------------------------------------------------------- the save


def test_a_version_1_save_upgrades_its_feed_into_the_story(pack: Content) -> None:
    h = Harness(pack)
    p, _ = h.join()
    p.age_days = 40
    doc = orjson.loads(dump_player(p))
    v1 = doc["player"]
    for key in ("story", "moments", "lives", "best_job", "low_money"):
        del v1[key]
    v1["feed"] = ["You were born.", "You napped."]
    v1["money"] = -20
    loaded = load_player(orjson.dumps({"v": 1, "player": v1}))
    assert SCHEMA_VERSION == 2
    assert loaded.story == [(40, "You were born."), (40, "You napped.")]
    assert loaded.feed == ["You were born.", "You napped."]
    assert loaded.moments == [] and loaded.lives == [] and loaded.low_money == -20
    assert orjson.loads(dump_player(loaded))["v"] == 2
