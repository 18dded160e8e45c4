"""A thousand whole lives on virtual time, through the real tick loop.

In-process, no sockets: bots stand where connections stand (they receive the
encoded frames the loop hands to writers) and answer through the inbox, like
readers do. NPC replies go through the real NpcService with the scripted
provider. MockClock's autojump runs ~10 minutes of game per second of CPU.

A short calendar (8 game days per game year) makes a whole life ~600 days;
everything else is the shipped content and rules.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import trio

from baolife import protocol as wire
from baolife.ai.offline import ScriptedProvider
from baolife.ai.service import NpcService
from baolife.content.schema import Content
from baolife.model import STAT_MAX, STAT_MIN
from baolife.tick.engine import World
from baolife.tick.loop import Attach, Deliver, Inbox, TickLoop

PLAYERS = 1000
YEAR_DAYS = 8
_AFTER_DEATH_OK = {"error", "ack", "pong", "npc_say", "bye", "welcome"}


class Finished:
    """Set when every bot has died and had its after-death probe refused."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.event = trio.Event()

    def one(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.event.set()


class Bot:
    """A player and the invariant checks on everything it receives."""

    def __init__(self, pid: int, inbox: Inbox, rng: random.Random, finished: Finished) -> None:
        self.pid = pid
        self.finished = finished
        self.inbox = inbox
        self.rng = rng
        self.player_id: int | None = None
        self.last_seq = 0
        self.last_tick = -1
        self.frames = 0
        self.open: dict[int, list[str]] = {}
        self.answers: dict[int, tuple[int, str]] = {}
        self.npcs: list[int] = []
        self.dead_at: int | None = None
        self.probe_sent = False
        self.probe_answer: dict[str, Any] | None = None
        self.closed_by = {"player": 0, "timeout": 0}
        self.replies = 0
        self.closed_with: int | None = None
        self.violations: list[str] = []

    def fail(self, what: str) -> None:
        if len(self.violations) < 5:
            self.violations.append(f"player {self.pid}: {what}")

    def send(self, cmd: wire.Command) -> None:
        self.inbox.put(Deliver(self, cmd))

    # Recipient
    def close(self, code: int, reason: str) -> None:
        self.closed_with = code
        if code != 1001:
            self.fail(f"closed {code} {reason}")

    def send_frame(self, frame: bytes) -> bool:
        f = orjson.loads(frame)
        tick = f["tick"]
        self.frames += 1
        if tick <= self.last_tick:
            self.fail(f"second frame in tick {tick}")
        self.last_tick = tick
        if not f["ops"]:
            self.fail("empty frame")
        if f["ops"][0]["op"] == "welcome" and f["seq"] == 1:
            self.last_seq = 1
        elif f["seq"] != self.last_seq + 1:
            self.fail(f"seq {f['seq']} after {self.last_seq}")
        else:
            self.last_seq = f["seq"]
        died_earlier = self.dead_at is not None
        for op in f["ops"]:
            self.check(op, tick, died_earlier)
        self.play(tick)
        return True

    def check(self, op: dict[str, Any], tick: int, died_earlier: bool) -> None:
        kind = op["op"]
        if died_earlier and kind not in _AFTER_DEATH_OK:
            self.fail(f"{kind} after death")
        if kind == "welcome":
            snap = op["snapshot"]
            self.npcs = [n["id"] for n in snap["npcs"]]
            self.check_stats(snap["stats"])
        elif kind == "state":
            self.check_stats(op.get("stats", {}))
        elif kind == "npc":
            if op["alive"] and op["id"] not in self.npcs:
                self.npcs.append(op["id"])
            elif not op["alive"] and op["id"] in self.npcs:
                self.npcs.remove(op["id"])
        elif kind == "prompt":
            if op["id"] in self.open:
                self.fail(f"prompt {op['id']} opened twice")
            self.open[op["id"]] = [c["key"] for c in op["choices"]]
            if op["expires_tick"] <= tick:
                self.fail("prompt expires in the past")
            if self.rng.random() < 0.6:  # answer 60%, let the rest time out
                self.answers[op["id"]] = (tick + self.rng.randint(1, 15), self.rng.choice(self.open[op["id"]]))
        elif kind == "prompt_closed":
            if op["id"] not in self.open:
                self.fail(f"prompt {op['id']} closed but not open")
            elif op["choice"] not in self.open.pop(op["id"]):
                self.fail("closed with a choice it did not offer")
            self.answers.pop(op["id"], None)
            self.closed_by[op["by"]] += 1
        elif kind == "died":
            self.dead_at = tick
            if self.open:
                self.fail(f"died with prompts still open: {sorted(self.open)}")
        elif kind == "npc_say":
            self.replies += 1
        elif kind == "error":
            if self.dead_at is not None and op.get("ref") == "probe":
                self.probe_answer = op
                self.finished.one()
            elif op["code"] not in ("not_allowed", "busy", "not_found"):
                self.fail(f"unexpected error {op}")

    def check_stats(self, stats: dict[str, int]) -> None:
        for name, value in stats.items():
            if not STAT_MIN <= value <= STAT_MAX:
                self.fail(f"{name}={value} out of range")

    def play(self, tick: int) -> None:
        if self.dead_at is not None:
            if not self.probe_sent:
                self.probe_sent = True
                self.send(wire.Act(action="exercise", ref="probe"))
            return
        for prompt_id, (when, key) in list(self.answers.items()):
            if when <= tick:
                del self.answers[prompt_id]
                self.send(wire.Answer(prompt=prompt_id, choice=key, ref=prompt_id))
        roll = self.rng.random()
        if roll < 0.01:
            self.send(wire.Act(action=self.rng.choice(["find_job", "study", "exercise", "see_doctor", "go_out"])))
        elif roll < 0.015 and self.npcs:
            self.send(wire.Say(npc=self.rng.choice(self.npcs), text="How are you?"))


async def test_a_thousand_whole_lives_keep_every_invariant(
    autojump_clock: trio.testing.MockClock, content: Content
) -> None:
    inbox = Inbox(limit=100_000)
    scripted = ScriptedProvider(content)
    npc = NpcService(scripted, scripted, workers=4, queue=256, timeout=5.0, deliver=inbox.put)
    world = World(content, day_ticks=1, year_days=YEAR_DAYS, rng=random.Random(2024), submit_say=npc.submit)
    dirty: set[int] = set()
    loop = TickLoop(world, inbox, tick_hz=10, mark_dirty=dirty.update)
    rng = random.Random(99)
    finished = Finished(PLAYERS)
    bots = [Bot(pid, inbox, rng, finished) for pid in range(1, PLAYERS + 1)]
    players = {bot.pid: world.rules.new_life(bot.pid, f"Bot {bot.pid}", 1) for bot in bots}
    for bot in bots:
        loop.add_session(bot)
        inbox.put(Attach(bot, players[bot.pid]))

    with trio.fail_after(3600):  # virtual seconds: 36,000 ticks, far beyond any life here
        async with trio.open_nursery() as nursery:
            await nursery.start(npc.run)
            await nursery.start(loop.run)
            await finished.event.wait()
            await loop.stop()
            nursery.cancel_scope.cancel()

    violations = [v for bot in bots for v in bot.violations]
    assert violations == [], violations[:10]
    # The loop's stop said bye (shutdown) and closed every connection with 1001.
    assert {b.closed_with for b in bots} == {1001}
    # Whole lives: everyone was born, lived through stages and died.
    ages = sorted(players[b.pid].age_days / YEAR_DAYS for b in bots)
    assert ages[len(ages) // 2] > 40
    assert all(not players[b.pid].alive for b in bots)
    # Nobody plays after death: the probe was refused.
    assert {b.probe_answer["code"] for b in bots if b.probe_answer} == {"not_allowed"}
    # Prompts were both answered and timed out, and every one was closed.
    assert sum(b.closed_by["player"] for b in bots) > 1000
    assert sum(b.closed_by["timeout"] for b in bots) > 1000
    assert all(not b.open for b in bots)
    # NPC replies came back through the worker path.
    assert sum(b.replies for b in bots) > 100
    stats = world.statistics()
    assert stats.deaths == PLAYERS
    assert loop.overruns == 0 or loop.overruns < loop.tick // 100
    assert dirty == {b.pid for b in bots}
