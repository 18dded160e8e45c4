"""Money that makes sense and feedback on every outcome (issue 17).

A free action is never refused; a child's costs are paid by its parents (or
refused with a reason a child understands, or waived for an event), never
debt before adulthood; an adult's debt sets ``in_debt`` and warns once per
crossing. Every action, prompt and event ends with an ``outcome`` op of what
it changed; NPC-targeted actions act on the person named. Synchronous: the
engine is driven directly, no event loop.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import attrs
import pytest

from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.content.schema import Content, Effects
from baolife.model import Npc, Player, dump_player
from baolife.tick.engine import World
from baolife.tick.rules import Unit

YEAR = 365
MINI = Path(__file__).parent.parent / "data" / "mini"


def _world(content: Content, seed: int = 1) -> World:
    return World(content, day_ticks=1, year_days=YEAR, rng=random.Random(seed))


def _player(world: World, years: float, money: int = 0, pid: int = 1) -> Player:
    """An online player of ``years`` with ``money``, a living mother and father."""
    p = world.rules.new_life(pid, "Bao Test", 1)
    p.age_days = round(years * YEAR)
    p.money = money
    p.npcs = [
        Npc(id=1, name="Mum Test", role="mother", closeness=80, persona="warm_parent"),
        Npc(id=2, name="Dad Test", role="father", closeness=60, persona="warm_parent"),
        Npc(id=3, name="Ms Chalk", role="teacher", closeness=40, persona=""),
    ]
    world.join(p, 0)
    world.take_output()
    return p


def _act(world: World, p: Player, action: str, npc: int | None = None) -> list[dict[str, Any]]:
    world.apply(p.id, wire.Act(action=action, npc=npc, ref=7), 1)
    return [op.wire() for op in world.take_output().get(p.id, [])]


def _orphan(p: Player) -> None:
    for n in p.npcs:
        if n.role in ("mother", "father"):
            n.alive = False


def _of(ops: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [op for op in ops if op["op"] == kind]


# ----------------------------------------------------------------- who pays


@pytest.mark.parametrize(("years", "action"), [(5, "play"), (30, "meditate")])
def test_a_free_action_is_never_refused_for_money(content: Content, years: int, action: str) -> None:
    world = _world(content)
    p = _player(world, years, money=-100)
    ops = _act(world, p, action)
    assert ops[0] == {"op": "ack", "ref": 7}
    assert p.money == -100


def test_a_childs_cost_is_paid_by_its_parents(content: Content) -> None:
    world = _world(content)
    p = _player(world, 10, money=0)
    ops = _act(world, p, "adopt_pet")  # costs 200
    assert ops[0]["op"] == "ack"
    assert p.money == 0
    assert "Your parents paid 200 for you." in [op["text"] for op in _of(ops, "feed")]
    (outcome,) = _of(ops, "outcome")
    assert outcome["ref"] == 7 and outcome["source"] == "action" and outcome["id"] == "adopt_pet"
    assert outcome["changes"]["paid_by"] == "parents"
    assert "money" not in outcome["changes"]
    assert outcome["changes"]["gained"] == ["has_pet"]


def test_a_child_with_nobody_to_pay_is_refused_in_words_a_child_understands(content: Content) -> None:
    world = _world(content)
    p = _player(world, 10, money=50)
    _orphan(p)
    before = dump_player(p)
    ops = _act(world, p, "adopt_pet")
    assert ops == [
        {"op": "error", "code": "not_allowed", "message": "you can't afford that and nobody will pay for you", "ref": 7}
    ]
    assert dump_player(p) == before
    # With enough of its own money, the child pays itself.
    p.money = 300
    ops = _act(world, p, "adopt_pet")
    assert ops[0]["op"] == "ack" and p.money == 100
    assert _of(ops, "outcome")[0]["changes"]["money"] == -200


def test_an_adult_cannot_buy_what_they_cannot_pay(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30, money=100)
    ops = _act(world, p, "adopt_pet")
    assert ops[0]["code"] == "not_allowed" and ops[0]["message"] == "Adopt a pet costs 200; you have 100"
    assert p.money == 100


def test_an_events_cost_for_a_minor_is_paid_by_parents_or_their_money_or_waived(content: Content) -> None:
    world = _world(content)
    rules = world.rules
    bill = Effects(money=-200)
    p = _player(world, 12, money=0)
    rules.apply(Unit(p, []), bill)
    assert p.money == 0
    _orphan(p)
    p.money = 500
    rules.apply(Unit(p, []), bill)
    assert p.money == 300
    p.money = 100
    ops: list[wire.Op] = []
    rules.apply(Unit(p, ops), bill)
    assert p.money == 100 and "in_debt" not in p.flags
    assert any(isinstance(op, wire.Feed) and "nobody could pay" in op.text for op in ops)
    # A gift is still a gift.
    rules.apply(Unit(p, []), Effects(money=50))
    assert p.money == 150


def test_no_child_goes_into_debt_in_many_lives_taking_default_choices(content: Content) -> None:
    """Hundreds of lives from birth to 18 at fast-forward, every prompt
    answered with its default at once, and often an action (whatever it
    costs, aimed at anyone it takes): money never goes below zero."""
    world = World(content, day_ticks=1, year_days=YEAR, rng=random.Random(17), fast_forward_budget=1 << 40)
    rng = random.Random(5)
    players = []
    for pid in range(1, 251):
        p = world.rules.new_life(pid, f"Kid {pid}", 1)
        p.speed = 5
        world.join(p, 0)
        players.append(p)
    adult = 18 * YEAR
    tick = 0
    while any(p.alive and p.age_days < adult for p in players):
        tick += 1
        for p in players:
            if not p.alive or p.age_days >= adult:
                continue
            for prompt in list(p.prompts):
                world.apply(p.id, wire.Answer(prompt=prompt.id, choice=content.events[prompt.event].default), tick)
            actions = world.actions_of(p.id)
            if actions and rng.random() < 0.3:
                action = content.actions[rng.choice(actions)]
                npcs = [n.id for n in p.npcs if n.alive and n.role in action.roles]
                world.apply(p.id, wire.Act(action=action.id, npc=rng.choice(npcs) if npcs else None), tick)
        world.advance(tick)
        world.take_output()
        for p in players:
            if p.age_days < adult:
                assert p.money >= 0, (p.id, p.age_days, p.money)
                assert "in_debt" not in p.flags
    assert sum(p.age_days >= adult for p in players) > 200


# ----------------------------------------------------------------- debt


def _unit_ops(world: World, p: Player, *effects: Effects) -> list[dict[str, Any]]:
    """Apply ``effects`` in one unit, finished as the engine does."""
    ops: list[wire.Op] = []
    u = Unit(p, ops)
    for eff in effects:
        world.rules.apply(u, eff)
    world.rules.finish(u)
    u.close()
    return [op.wire() for op in ops]


def test_adult_debt_sets_in_debt_and_warns_once_per_crossing(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30, money=100)
    ops = _unit_ops(world, p, Effects(money=-500))
    assert p.money == -400 and "in_debt" in p.flags
    assert _of(ops, "warning") == [
        {"op": "warning", "kind": "money", "level": "low", "text": content.world.money.debt_text}
    ]
    state = _of(ops, "state")[0]
    assert {"id": "in_debt", "label": "In debt", "kind": "life"} in state["flags"]
    # Deeper in debt: no new warning.
    assert _of(_unit_ops(world, p, Effects(money=-100)), "warning") == []
    # Repaid: the flag goes, no warning.
    ops = _unit_ops(world, p, Effects(money=1000))
    assert p.money == 500 and "in_debt" not in p.flags
    assert _of(ops, "warning") == [] and _of(ops, "state")[0]["flags"] == []
    # In and out and in again within one unit: one crossing as the player sees it.
    ops = _unit_ops(world, p, Effects(money=-600), Effects(money=200), Effects(money=-300))
    assert p.money == -200 and len(_of(ops, "warning")) == 1


def test_a_loan_gets_you_out_of_debt_and_the_outcome_says_so(content: Content) -> None:
    world = _world(content)
    p = _player(world, 25, money=-500)
    p.flags.add("in_debt")
    ops = _act(world, p, "take_loan")
    (outcome,) = _of(ops, "outcome")
    assert outcome["changes"]["money"] == 10_000
    assert outcome["changes"]["gained"] == ["loan"] and outcome["changes"]["lost"] == ["in_debt"]
    state = _of(ops, "state")[-1]
    assert [f["id"] for f in state["flags"]] == ["loan"]
    assert state["cooldowns"] == {"take_loan": p.age_days + content.actions["take_loan"].cooldown_days}
    assert any(s.event == "bank_loan_repaid" for s in p.scheduled)


# ----------------------------------------------------------------- warnings


def test_stat_warnings_come_once_per_crossing_and_the_worst_level_only(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30, money=100)
    p.stats.health = 35

    def health(delta: int) -> list[dict[str, Any]]:
        return _of(_unit_ops(world, p, Effects(health=delta)), "warning")

    low, critical = content.world.warnings["health"].low, content.world.warnings["health"].critical
    assert health(-10) == [
        {"op": "warning", "kind": "health", "level": "low", "text": content.world.warnings["health"].low_text}
    ]
    assert p.stats.health == 25 < low
    assert health(-5) == []
    assert [w["level"] for w in health(-10)] == ["critical"] and p.stats.health < critical
    assert health(-1) == []
    assert health(30) == []
    assert [w["level"] for w in health(-28)] == ["critical"]  # from 39 to 11: the worse level only


# ----------------------------------------------------------------- outcomes


def _mini_child(mini: Content) -> Content:
    """The mini pack, where lives are children until 18 (12-day years here)."""
    return attrs.evolve(mini, world=attrs.evolve(mini.world, money=attrs.evolve(mini.world.money, adult_age=18)))


@pytest.fixture(scope="module")
def mini() -> Content:
    return content_pkg.load(MINI)


def test_an_action_outcome_carries_what_changed_after_its_effects(mini: Content) -> None:
    world = World(mini, day_ticks=1, year_days=12, rng=random.Random(3))
    p = world.rules.new_life(1, "Ana Test", 1)
    p.stats.health = 50
    world.join(p, 0)
    world.take_output()
    world.apply(1, wire.Act(action="nap", ref="n"), 1)
    ops = [op.wire() for op in world.take_output()[1]]
    assert [op["op"] for op in ops] == ["ack", "feed", "outcome", "state"]
    assert ops[2] == {
        "op": "outcome",
        "ref": "n",
        "source": "action",
        "id": "nap",
        "title": "Nap",
        "changes": {"stats": {"health": 1}},
    }
    assert ops[3]["cooldowns"] == {"nap": 2}


def test_the_mini_childs_purchase_is_paid_by_its_mother(mini: Content) -> None:
    world = World(_mini_child(mini), day_ticks=1, year_days=12, rng=random.Random(3))
    p = world.rules.new_life(1, "Ana Test", 1)
    world.join(p, 0)
    world.take_output()
    world.apply(1, wire.Act(action="buy", ref=1), 1)
    ops = [op.wire() for op in world.take_output()[1]]
    assert p.money == 500
    assert "Your mother paid 400 for you." in [op["text"] for op in _of(ops, "feed")]
    assert _of(ops, "outcome")[0]["changes"] == {"stats": {"happiness": 3}, "paid_by": "parents"}


def test_a_prompt_outcome_answers_the_answer_and_a_timeout_has_no_ref(mini: Content) -> None:
    world = World(mini, day_ticks=1, year_days=12, rng=random.Random(3))
    p = world.rules.new_life(1, "Ana Test", 1)
    p.stats.happiness = 50
    world.join(p, 0)
    world.take_output()
    tick = 0
    while not p.prompts:
        tick += 1
        world.advance(tick)
    world.take_output()
    prompt = p.prompts[0]
    world.apply(1, wire.Answer(prompt=prompt.id, choice="a", ref="a1"), tick)
    ops = [op.wire() for op in world.take_output()[1]]
    (outcome,) = _of(ops, "outcome")
    assert outcome == {
        "op": "outcome",
        "ref": "a1",
        "source": "prompt",
        "id": prompt.id,
        "title": "A choice for Ana",
        "changes": {"stats": {"happiness": 5}},
    }
    assert [op["op"] for op in ops].index("outcome") > [op["op"] for op in ops].index("feed")
    while not p.prompts:
        tick += 1
        world.advance(tick)
    outcomes: list[dict[str, Any]] = []
    while p.prompts:
        tick += 1
        world.advance(tick)
        outcomes += [op.wire() for op in world.take_output().get(1, []) if op.op == "outcome"]
    timed_out = [o for o in outcomes if o["source"] == "prompt"]
    assert len(timed_out) == 1 and "ref" not in timed_out[0]
    assert timed_out[0]["changes"]["stats"]["happiness"] < 0


def test_an_event_without_choices_has_an_outcome(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30, money=100)
    event = content.events["debt_stress"]
    u = Unit(p, [])
    world._fire(u, event, 1)
    (outcome,) = [op.wire() for op in u.ops if op.op == "outcome"]
    assert outcome["source"] == "event" and outcome["id"] == "debt_stress" and outcome["title"] == event.title
    assert outcome["changes"]["stats"]["happiness"] == -3


# ----------------------------------------------------------------- NPC-targeted actions


@pytest.mark.parametrize(
    ("npc", "code", "words"),
    [
        (None, "not_allowed", "choose who to ask for money"),
        (99, "not_found", "nobody with id 99"),
        (3, "not_allowed", "you cannot ask for money your teacher"),
    ],
)
def test_a_targeted_action_needs_a_living_person_of_its_roles(
    content: Content, npc: int | None, code: str, words: str
) -> None:
    world = _world(content)
    p = _player(world, 30, money=0)
    before = dump_player(p)
    ops = _act(world, p, "ask_money", npc)
    assert len(ops) == 1 and ops[0]["code"] == code and words in ops[0]["message"]
    assert dump_player(p) == before


def test_a_dead_person_cannot_be_asked(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30)
    p.npcs[0].alive = False
    assert _act(world, p, "ask_money", 1)[0]["code"] == "not_found"


def test_asking_for_money_gives_by_role_and_closeness_and_costs_closeness(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30, money=-100)
    p.flags.add("in_debt")
    eff = content.actions["ask_money"].effects
    ops = _act(world, p, "ask_money", 1)
    gift = eff.npc_money["mother"] * 80 // 100
    assert p.money == -100 + gift
    mum = p.npc(1)
    assert mum is not None and mum.closeness == 80 + eff.closeness
    (outcome,) = _of(ops, "outcome")
    assert outcome["changes"]["money"] == gift
    assert outcome["changes"]["npcs"] == [{"id": 1, "name": "Mum Test", "closeness": eff.closeness}]
    assert outcome["changes"]["lost"] == ["in_debt"]
    assert f"Mum Test gave you {gift:,}." in [op["text"] for op in _of(ops, "feed")]
    # Only the mother changed; the father was not asked.
    assert p.npc(2).closeness == 60  # type: ignore[union-attr]


def test_a_targeted_action_changes_only_the_person_named(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30)
    ops = _act(world, p, "spend_time", 2)
    assert p.npc(2).closeness == 64 and p.npc(1).closeness == 80  # type: ignore[union-attr]
    assert "You spent time with Dad Test." in [op["text"] for op in _of(ops, "feed")]
    # npc on an untargeted action is ignored.
    assert _act(world, p, "meditate", 12345)[0]["op"] == "ack"


def test_act_npc_is_an_optional_integer_on_the_wire() -> None:
    assert wire.parse('{"type": "act", "action": "argue", "npc": 4}') == wire.Act(action="argue", npc=4)
    assert wire.parse('{"type": "act", "action": "nap"}') == wire.Act(action="nap")
    with pytest.raises(wire.Rejected) as err:
        wire.parse('{"type": "act", "action": "argue", "npc": "4", "id": 3}')
    assert err.value.op.code == "bad_request" and err.value.op.ref == 3


# ----------------------------------------------------------------- views


def test_the_snapshot_shows_flags_action_info_and_cooldowns(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30, money=1000)
    p.flags |= {"owns_car", "smoker"}
    p.cooldowns = {"meditate": p.age_days + 3, "exercise": p.age_days - 1, "debt_stress": p.age_days + 50}
    snap = world.snapshot(p, 0)
    assert snap["flags"] == [
        {"id": "smoker", "label": "Smoker", "kind": "habit"},
        {"id": "owns_car", "label": "Car owner", "kind": "asset"},
    ]
    assert snap["cooldowns"] == {"meditate": p.age_days + 3}
    info = snap["action_info"]
    assert set(info) == set(content.actions)
    house = content.actions["buy_house"]
    assert info["buy_house"] == {
        "label": house.label,
        "group": house.group,
        "cost": house.cost,
        "cooldown_days": house.cooldown_days,
        "target": None,
    }
    assert info["ask_money"]["target"] == "npc" and "mother" in info["ask_money"]["roles"]
    assert all(i["group"] in ("daily", "health", "money", "relationships", "career") for i in info.values())
    assert snap["actions"] and snap["action_labels"]["meditate"] == "Meditate"


def test_targeted_actions_are_offered_only_with_someone_to_target(content: Content) -> None:
    world = _world(content)
    p = _player(world, 30)
    assert "ask_money" in world.actions_of(p.id)
    for n in p.npcs:
        n.alive = False
    world.join(p, 0)  # recompute
    assert "ask_money" not in world.actions_of(p.id) and "spend_time" not in world.actions_of(p.id)
