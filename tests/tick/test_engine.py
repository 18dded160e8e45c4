"""The game engine as a sans-IO core: commands and ticks in, ops out.

These tests run no event loop. They use the tiny pack in tests/data/mini
(an event check every day, no random deaths) so outcomes are exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.content.schema import Content
from baolife.model import LIMITS, dump_player
from tests.tick.harness import Harness

MINI = Path(__file__).parent.parent / "data" / "mini"


@pytest.fixture(scope="module")
def mini() -> Content:
    return content_pkg.load(MINI)


def kinds(ops: list[dict[str, Any]]) -> list[str]:
    return [op["op"] for op in ops]


def test_join_sends_registered_then_welcome_with_the_whole_view(mini: Content) -> None:
    h = Harness(mini)
    player, ops = h.join(token="secret")  # noqa: S106 - a test value
    assert kinds(ops) == ["registered", "welcome"]
    assert ops[0] == {"op": "registered", "player": 1, "token": "secret", "ref": "j"}
    snap = ops[1]["snapshot"]
    for key in (
        "name",
        "alive",
        "age_days",
        "stats",
        "money",
        "job",
        "education",
        "npcs",
        "prompts",
        "actions",
        "feed",
    ):
        assert key in snap
    assert snap["name"] == "Ana Test" and snap["alive"] is True and snap["age_days"] == 0
    assert set(snap["stats"]) == {"health", "happiness", "smarts", "looks"}
    assert [n["role"] for n in snap["npcs"]] == ["mother"]
    # "vote" needs age 18; the others have no age condition.
    assert snap["actions"] == ["nap", "buy", "plan", "die_now"]
    assert snap["money"] == 500


def test_a_day_passes_only_on_the_players_own_tick_offset(mini: Content) -> None:
    h = Harness(mini, day_ticks=4)
    players = [h.join(pid)[0] for pid in (1, 2, 3, 4)]
    offsets = {h.world._offset[p.id] for p in players}
    assert offsets == {0, 1, 2, 3}  # spread evenly over the day's ticks
    for _ in range(8):
        out = h.step()
        for pid, ops in out.items():
            assert h.tick % 4 == h.world._offset[pid]
            assert any(op["op"] == "state" and "age_days" in op for op in ops)
    assert [p.age_days for p in players] == [2, 2, 2, 2]


def test_prompt_times_out_with_its_default_exactly_at_expires_tick(mini: Content) -> None:
    h = Harness(mini, day_ticks=3)
    player, _ = h.join()
    prompt = next(op for op in h.run_until(1, lambda op: op["op"] == "prompt") if op["op"] == "prompt")
    assert prompt["title"] == "A choice for Ana"
    assert prompt["choices"] == [{"key": "a", "label": "Option A"}, {"key": "b", "label": "Option B"}]
    happiness = player.stats.happiness
    closed_at = None
    while closed_at is None:
        ops = h.step().get(1, [])
        for op in ops:
            if op["op"] == "prompt_closed":
                assert op == {"op": "prompt_closed", "id": prompt["id"], "choice": "b", "by": "timeout"}
                closed_at = h.tick
    assert closed_at == prompt["expires_tick"]
    assert player.stats.happiness == max(0, happiness - 5)
    assert player.prompts == []


def test_answer_applies_the_choice_and_acks(mini: Content) -> None:
    h = Harness(mini)
    player, _ = h.join()
    prompt = next(op for op in h.run_until(1, lambda op: op["op"] == "prompt") if op["op"] == "prompt")
    before = player.stats.happiness
    ops = h.step((1, wire.Answer(prompt=prompt["id"], choice="a", ref=9)))[1]
    assert kinds(ops)[:3] == ["ack", "prompt_closed", "feed"]
    assert ops[0] == {"op": "ack", "ref": 9}
    assert ops[1] == {"op": "prompt_closed", "id": prompt["id"], "choice": "a", "by": "player"}
    assert ops[2]["text"] == "You chose A."
    assert player.stats.happiness == min(100, before + 5)
    state = next(op for op in ops if op["op"] == "state")
    assert state["stats"]["happiness"] == player.stats.happiness


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda pid: wire.Answer(prompt=pid + 999, choice="a", ref=1), "not_found"),
        (lambda pid: wire.Answer(prompt=pid, choice="zzz", ref=1), "invalid_choice"),
        (lambda pid: wire.Act(action="fly", ref=1), "not_found"),
        (lambda pid: wire.Act(action="vote", ref=1), "not_allowed"),
        (lambda pid: wire.Say(npc=77, text="hi", ref=1), "not_found"),
        (lambda pid: wire.NewLife(ref=1), "not_allowed"),
    ],
)
def test_a_refused_command_gets_its_error_and_changes_nothing(mini: Content, make: Any, code: str) -> None:
    h = Harness(mini)
    player, _ = h.join()
    prompt = next(op for op in h.run_until(1, lambda op: op["op"] == "prompt") if op["op"] == "prompt")
    h.tick += 1
    h.world.take_changed()
    before = dump_player(player)
    h.world.apply(1, make(prompt["id"]), h.tick)
    ops = [op.wire() for op in h.world.take_output()[1]]
    assert len(ops) == 1 and ops[0]["op"] == "error" and ops[0]["code"] == code and ops[0]["ref"] == 1
    assert ops[0]["message"]
    assert dump_player(player) == before
    assert h.world.take_changed() == set()


def test_actions_check_cooldown_and_money(mini: Content) -> None:
    h = Harness(mini)
    player, _ = h.join()
    ops = h.step((1, wire.Act(action="nap", ref=1)))[1]
    assert ops[0] == {"op": "ack", "ref": 1}
    ops = h.step((1, wire.Act(action="nap", ref=2)))[1]
    assert ops[0]["code"] == "not_allowed" and "again in 1 day" in ops[0]["message"]
    h.step()
    assert h.step((1, wire.Act(action="nap", ref=3)))[1][0] == {"op": "ack", "ref": 3}
    assert h.step((1, wire.Act(action="buy", ref=4)))[1][0]["op"] == "ack"
    assert player.money == 100
    ops = h.step((1, wire.Act(action="buy", ref=5)))[1]
    assert ops[0]["code"] == "not_allowed" and "costs 400" in ops[0]["message"]
    assert player.money == 100


def test_flags_and_scheduled_follow_ups(mini: Content) -> None:
    h = Harness(mini)
    player, _ = h.join()
    h.step((1, wire.Act(action="plan", ref=1)))
    assert "x" in player.flags and player.scheduled
    feeds = [op["text"] for _ in range(3) for op in h.step().get(1, []) if op["op"] == "feed"]
    assert "The follow-up happened." in feeds
    assert player.scheduled == []


def test_event_index_checks_only_events_that_can_apply(mini: Content) -> None:
    h = Harness(mini)
    registry = h.world.registry
    someone = h.world.rules.new_life(9, "Someone", 1)

    def candidates(years: int, flags: set[str]) -> list[str]:
        someone.age_days = years * 12
        someone.flags = flags
        return sorted(e.id for e in registry.candidates(someone, years))

    assert candidates(0, set()) == ["choose"]
    assert candidates(5, set()) == ["child_plain"]
    assert candidates(5, {"x"}) == ["child_plain", "flagged"]
    assert candidates(30, {"x"}) == []
    player, _ = h.join()
    for _ in range(30):
        h.step()
    stats = h.world.statistics()
    # One candidate ("choose") per daily check while a baby; never the child events.
    assert stats.checks == 30 and stats.evaluations == 30
    assert stats.player_days == 30


def test_say_goes_out_as_a_job_and_comes_back_as_npc_say(mini: Content) -> None:
    h = Harness(mini)
    player, _ = h.join()
    mother = player.npcs[0]
    ops = h.step((1, wire.Say(npc=mother.id, text="Hi mom", ref="s")))[1]
    assert ops[0] == {"op": "ack", "ref": "s"}
    assert len(h.jobs) == 1
    job = h.jobs[0]
    assert (job.player, job.npc, job.ref, job.text, job.persona) == (1, mother.id, "s", "Hi mom", "plain")
    # Ages the reply must fit: a newborn (mini's mother is 30 years older).
    assert (job.player_years, job.player_stage, job.npc_years) == (0, "baby", 30)
    # One say in flight per player.
    ops = h.step((1, wire.Say(npc=mother.id, text="Again", ref="t")))[1]
    assert ops[0]["code"] == "busy" and ops[0]["ref"] == "t"
    closeness = mother.closeness
    h.world.npc_reply(1, player.life, mother.id, "s", "Hello Ana.")
    ops = h.step()[1]
    assert {"op": "npc_say", "npc": mother.id, "text": "Hello Ana.", "ref": "s"} in ops
    assert {"op": "npc", **h.world.rules.npc_view(player, mother)} in ops and mother.closeness == closeness + 1
    assert [(t.who, t.text) for t in mother.memory] == [("player", "Hi mom"), ("npc", "Hello Ana.")]
    # A full job channel answers busy and remembers nothing.
    h.accept_jobs = False
    ops = h.step((1, wire.Say(npc=mother.id, text="Busy?", ref="u")))[1]
    assert ops[0]["code"] == "busy"
    assert len(mother.memory) == 2


def test_npc_memory_is_capped(mini: Content) -> None:
    h = Harness(mini)
    player, _ = h.join()
    mother = player.npcs[0]
    for i in range(LIMITS.npc_memory):
        h.step((1, wire.Say(npc=mother.id, text=f"line {i}", ref=i)))
        h.world.npc_reply(1, player.life, mother.id, i, f"reply {i}")
    assert len(mother.memory) == LIMITS.npc_memory
    assert mother.memory[-1].text == f"reply {LIMITS.npc_memory - 1}"


def test_death_stops_the_clock_and_only_new_life_goes_on(mini: Content) -> None:
    h = Harness(mini)
    player, _ = h.join()
    h.run_until(1, lambda op: op["op"] == "prompt")
    ops = h.step((1, wire.Act(action="die_now", ref=1)))[1]
    assert "died" in kinds(ops)
    died = next(op for op in ops if op["op"] == "died")
    assert died == {"op": "died", "cause": "a test", "age_days": player.age_days, "summary": died["summary"]}
    assert died["summary"]["life"] == 1 and died["summary"]["cause"] == "a test"
    # The open prompt was closed, by timeout, in the same frame before death.
    assert any(op["op"] == "prompt_closed" and op["by"] == "timeout" for op in ops)
    age = player.age_days
    for cmd in (
        wire.Act(action="nap", ref=2),
        wire.Say(npc=1, text="hi", ref=3),
        wire.Answer(prompt=1, choice="a", ref=4),
    ):
        ops = h.step((1, cmd))[1]
        assert ops == [{"op": "error", "code": "not_allowed", "ref": cmd.ref, "message": ops[0]["message"]}]
    for _ in range(5):
        assert 1 not in h.step()  # no frames at all for a dead, idle player
    assert player.age_days == age
    ops = h.step((1, wire.NewLife(ref=5)))[1]
    assert kinds(ops)[0] == "welcome" and ops[0]["ref"] == 5
    assert ops[0]["snapshot"]["life"] == 2 and ops[0]["snapshot"]["alive"] is True
    assert player.alive and player.life == 2 and ops[0]["snapshot"]["age_days"] == 0


def test_salary_and_costs_are_paid_day_by_day_and_sum_to_the_year(mini: Content) -> None:
    h = Harness(mini, year_days=365)
    rules = h.world.rules
    for since in (0, 17, 200):
        assert sum(rules.day_share(36500, since, d) for d in range(since + 1, since + 366)) == 36500


def test_education_enrols_and_graduates_on_schedule(mini: Content) -> None:
    h = Harness(mini, year_days=12)
    player, _ = h.join()
    for _ in range(36):
        h.step()
    assert player.education == "school"
    for _ in range(12):
        h.step()
    assert player.education == "school_done"


def test_a_reply_after_death_is_delivered_but_changes_nothing(mini: Content) -> None:
    h = Harness(mini)
    player, _ = h.join()
    mother = player.npcs[0]
    h.step((1, wire.Say(npc=mother.id, text="Bye mom", ref="last")))
    h.step((1, wire.Act(action="die_now", ref=1)))
    before = dump_player(player)
    h.world.npc_reply(1, player.life, mother.id, "last", "Goodbye.")
    ops = h.step()[1]
    assert ops == [{"op": "npc_say", "npc": mother.id, "text": "Goodbye.", "ref": "last"}]
    assert dump_player(player) == before
