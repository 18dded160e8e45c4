"""The tick loop on virtual time: rate, overruns, arrival order, sessions."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import hypothesis
import orjson
import pytest
import trio
import trio.testing
from hypothesis import strategies as st

from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.content.schema import Content
from baolife.tick.delivery import _Stream
from baolife.tick.engine import World
from baolife.tick.loop import REPLAY_FRAMES, Attach, Broadcast, Deliver, Detach, Inbox, Kick, TickLoop

MINI = Path(__file__).parent.parent / "data" / "mini"


@pytest.fixture(scope="module")
def mini() -> Content:
    return content_pkg.load(MINI)


class FakeSession:
    def __init__(self) -> None:
        self.player_id: int | None = None
        self.frames: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def send_frame(self, frame: bytes) -> bool:
        self.frames.append(orjson.loads(frame))
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def ops(self) -> list[dict[str, Any]]:
        return [op for f in self.frames for op in f["ops"]]


def make_loop(content: Content, **kwargs: Any) -> tuple[TickLoop, Inbox, set[int]]:
    inbox = Inbox(limit=1000)
    world = World(content, day_ticks=kwargs.pop("day_ticks", 5), year_days=12, rng=random.Random(1))
    dirty: set[int] = set()
    return TickLoop(world, inbox, tick_hz=10, mark_dirty=dirty.update, **kwargs), inbox, dirty


async def test_the_loop_keeps_its_rate_without_drift(autojump_clock: trio.testing.MockClock, mini: Content) -> None:
    loop, _, _ = make_loop(mini)
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            await nursery.start(loop.run)
            await trio.sleep_until(start + 100.05)
            assert loop.tick == 1001  # tick 1 at t=0, then one every 0.1 s
            assert loop.overruns == 0
            await loop.stop()


@pytest.mark.parametrize(
    ("late", "expected_ticks"),
    [
        # 3.5 periods late three times: the schedule catches up (deadline += period), nothing is lost.
        (0.35, 51),
        # 7 periods late: too far behind to burst; it skips ahead, losing 6 periods each time.
        (0.7, 51 - 3 * 6),
    ],
)
async def test_overruns_are_counted_small_ones_caught_up_large_ones_skipped(
    autojump_clock: trio.testing.MockClock, mini: Content, late: float, expected_ticks: int
) -> None:
    loop, _, _ = make_loop(mini)
    step = loop.step

    def slow_step(tick: int, now: float) -> None:
        step(tick, now)
        if tick in (5, 15, 25):
            autojump_clock.jump(late)

    loop.step = slow_step  # type: ignore[method-assign]
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            await nursery.start(loop.run)
            await trio.sleep_until(start + 5.05)
            await loop.stop()
    assert loop.overruns >= 3
    assert loop.tick == expected_ticks


async def test_commands_apply_in_arrival_order_and_frames_are_one_per_tick(
    autojump_clock: trio.testing.MockClock, mini: Content
) -> None:
    loop, inbox, dirty = make_loop(mini, day_ticks=1)
    a, b = FakeSession(), FakeSession()
    for pid, session in ((1, a), (2, b)):
        loop.add_session(session)
        inbox.put(Attach(session, loop.world.rules.new_life(pid, f"P{pid}", 1), ref=f"w{pid}"))
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(loop.run)
            await trio.sleep(0.5)
            for i in range(5):
                inbox.put(Deliver(a, wire.Ping(ref=f"a{i}")))
                inbox.put(Deliver(b, wire.Act(action="fly", ref=f"b{i}")))
                inbox.put(Deliver(a, wire.Act(action="fly", ref=f"c{i}")))
            await trio.sleep(1.0)
            await loop.stop()
    refs = [op["ref"] for op in a.ops() if op.get("ref", "").startswith(("a", "c"))]
    assert refs == [x for i in range(5) for x in (f"a{i}", f"c{i}")]
    assert [op["ref"] for op in b.ops() if op["op"] == "error"] == [f"b{i}" for i in range(5)]
    for session in (a, b):
        ticks = [f["tick"] for f in session.frames]
        assert ticks == sorted(set(ticks))  # at most one frame per tick
        assert [f["seq"] for f in session.frames] == list(range(1, len(session.frames) + 1))
        assert session.frames[0]["ops"][0]["op"] == "welcome"
        assert session.closed == (1001, "shutdown")
        assert session.ops()[-1] == {"op": "bye", "reason": "shutdown"}
    assert dirty == {1, 2}


async def test_a_new_session_for_a_player_replaces_the_old(
    autojump_clock: trio.testing.MockClock, mini: Content
) -> None:
    online: list[tuple[int, bool]] = []
    loop, inbox, _ = make_loop(mini, on_online=lambda pid, up: online.append((pid, up)))
    old, new, stranger = FakeSession(), FakeSession(), FakeSession()
    player = loop.world.rules.new_life(1, "P", 1)
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(loop.run)
            for s in (old, new, stranger):
                loop.add_session(s)
            inbox.put(Attach(old, player))
            await trio.sleep(0.3)
            inbox.put(Attach(new, player, ref="again"))
            inbox.put(Deliver(old, wire.Act(action="nap", ref="late")))
            await trio.sleep(0.3)
            assert old.closed == (4000, "replaced")
            assert old.ops()[-1] == {"op": "bye", "reason": "replaced"}
            assert not any(op.get("ref") == "late" and op["op"] == "ack" for op in old.ops())
            assert new.frames[0]["seq"] == 1 and new.frames[0]["ops"][0]["ref"] == "again"
            assert online == [(1, False)]  # the old session's hold was released
            inbox.put(Deliver(stranger, wire.Act(action="nap", ref="s")))
            inbox.put(Kick(new, "idle", 4001))
            await trio.sleep(0.3)
            assert stranger.ops() == [
                {
                    "op": "error",
                    "code": "unauthenticated",
                    "ref": "s",
                    "message": "log in first (register, login or resume)",
                }
            ]
            assert stranger.frames[0]["seq"] == 0
            assert new.closed == (4001, "idle")
            assert online == [(1, False), (1, False)]
            assert 1 not in loop.world.players
            inbox.put(Detach(stranger))
            await loop.stop()
    assert stranger.closed is None  # it had gone before the shutdown


@hypothesis.given(
    start=st.integers(min_value=0, max_value=5),
    appended=st.integers(min_value=0, max_value=3 * REPLAY_FRAMES),
    last_seq=st.integers(min_value=0, max_value=4 * REPLAY_FRAMES),
)
def test_stream_numbers_frames_without_keeping_the_numbers(start: int, appended: int, last_seq: int) -> None:
    # What resume may replay, against frames numbered one by one.
    stream = _Stream(start)
    numbered = []
    for i in range(appended):
        frame = wire.encode_frame(start + i + 1, i, [wire.Pong(ref=i)])
        numbered.append((stream.append(frame), frame))
    kept = numbered[-REPLAY_FRAMES:]
    assert stream.seq == start + appended
    missed = [frame for seq, frame in kept if seq > last_seq]
    covers = last_seq == stream.seq or (last_seq < stream.seq and bool(kept) and kept[0][0] <= last_seq + 1)
    assert stream.covers(last_seq) is covers
    if covers:
        assert stream.after(last_seq) == missed
        assert len(missed) == stream.seq - last_seq


# One valid message of every type that needs login.
NEEDS_LOGIN = {
    "act": {"action": "nap"},
    "answer": {"prompt": 1, "choice": "a"},
    "lives": {},
    "logout": {},
    "new_life": {},
    "ping": {},
    "say": {"npc": 1, "text": "hi"},
    "speed": {"x": 2},
    "story": {},
    "talks": {"npc": 1},
}


def test_every_type_but_those_that_log_in_needs_login() -> None:
    assert {kind for kind, cls in wire.COMMANDS.items() if cls.needs_login} == set(NEEDS_LOGIN)


@pytest.mark.parametrize("kind", sorted(NEEDS_LOGIN))
def test_before_login_every_command_that_needs_it_is_unauthenticated(mini: Content, kind: str) -> None:
    loop, inbox, _ = make_loop(mini)
    stranger = FakeSession()
    loop.add_session(stranger)
    cmd = wire.parse(orjson.dumps({"type": kind, "id": kind, **NEEDS_LOGIN[kind]}).decode())
    inbox.put(Deliver(stranger, cmd))
    loop.step(1, 1.0)
    assert [(op["op"], op.get("code"), op.get("ref")) for op in stranger.ops()] == [("error", "unauthenticated", kind)]
    assert stranger.closed is None and loop.error_counts["unauthenticated"] == 1


def test_a_login_that_reaches_the_loop_on_a_logged_in_session_is_not_allowed(mini: Content) -> None:
    loop, inbox, _ = make_loop(mini)
    session = FakeSession()
    loop.add_session(session)
    inbox.put(Attach(session, loop.world.rules.new_life(1, "P", 1)))
    inbox.put(Deliver(session, wire.Login(token="t", ref="again")))  # noqa: S106
    loop.step(1, 1.0)
    refused = [op for op in session.ops() if op.get("ref") == "again"]
    assert refused == [
        {"op": "error", "code": "not_allowed", "ref": "again", "message": "already logged in; log out first"}
    ]


def test_a_broadcast_reaches_every_logged_in_player_in_this_ticks_frame(mini: Content) -> None:
    loop, inbox, _ = make_loop(mini)
    a, b, leaving, stranger = FakeSession(), FakeSession(), FakeSession(), FakeSession()
    for pid, s in enumerate((a, b, leaving), start=1):
        loop.add_session(s)
        inbox.put(Attach(s, loop.world.rules.new_life(pid, f"P{pid}", 1)))
    loop.add_session(stranger)
    loop.step(1, 1.0)
    notice = wire.Pong(ref="notice")
    inbox.put(Deliver(leaving, wire.Logout(ref="out")))
    inbox.put(Deliver(a, wire.Ping(ref="before")))
    inbox.put(Broadcast([notice]))
    loop.step(2, 2.0)
    for s in (a, b):
        assert s.frames[-1]["tick"] == 2 and {"op": "pong", "ref": "notice"} in s.frames[-1]["ops"]
    assert [op["ref"] for op in a.frames[-1]["ops"] if op["op"] == "pong"] == ["before", "notice"]
    assert {"op": "bye", "reason": "logout"} in leaving.ops()
    assert {"op": "pong", "ref": "notice"} not in leaving.ops()  # it was saying its bye
    assert stranger.frames == []


def test_the_welcome_hook_follows_the_snapshot_at_every_attach(mini: Content) -> None:
    asked: list[int] = []

    def welcome(pid: int) -> list[wire.Op]:
        asked.append(pid)
        return [wire.Pong(ref=f"hello {pid}")]

    loop, inbox, _ = make_loop(mini, welcome=welcome)
    first, again = FakeSession(), FakeSession()
    player = loop.world.rules.new_life(1, "P", 1)
    loop.add_session(first)
    inbox.put(Attach(first, player, ref="w", token="t"))  # noqa: S106 - a register
    loop.step(1, 1.0)
    assert [op["op"] for op in first.ops()] == ["registered", "welcome", "pong"]
    assert first.ops()[-1]["ref"] == "hello 1"
    inbox.put(Detach(first))
    loop.step(2, 2.0)
    loop.add_session(again)
    inbox.put(Attach(again, player, ref="r", resume=first.frames[-1]["seq"]))
    loop.step(3, 3.0)
    # A resume with nothing to replay: its ack, then the hook's ops.
    assert [(op["op"], op.get("ref")) for op in again.ops()][:2] == [("ack", "r"), ("pong", "hello 1")]
    assert asked == [1, 1]


def test_a_kick_through_the_inbox_says_bye_with_the_operators_text(mini: Content) -> None:
    online: list[tuple[int, bool]] = []
    loop, inbox, _ = make_loop(mini, on_online=lambda pid, up: online.append((pid, up)))
    session = FakeSession()
    loop.add_session(session)
    inbox.put(Attach(session, loop.world.rules.new_life(1, "P", 1)))
    loop.step(1, 1.0)
    inbox.put(Kick(loop.by_player[1], "kicked", wire.CloseCode.KICKED, message="take a break"), force=True)
    loop.step(2, 2.0)
    assert session.ops()[-1] == {"op": "bye", "reason": "kicked", "message": "take a break"}
    assert session.closed == (4002, "kicked")
    assert loop.by_player == {} and 1 not in loop.world.players and online == [(1, False)]


def test_what_arrives_while_a_tick_runs_goes_out_in_that_ticks_frame_after_its_days(mini: Content) -> None:
    # The listener's read hub reads the sockets again before the frames go out
    # (read_now); what it put in the inbox is answered in this tick's frame.
    loop, inbox, _ = make_loop(mini, day_ticks=1)
    a, b = FakeSession(), FakeSession()
    for pid, s in ((1, a), (2, b)):
        loop.add_session(s)
        inbox.put(Attach(s, loop.world.rules.new_life(pid, f"P{pid}", 1)))
    loop.step(1, 1.0)
    arriving = [Deliver(a, wire.Ping(ref="late")), Deliver(b, wire.Act(action="fly", ref="refused"))]
    days_before_read: list[int] = []

    def read_now() -> int:
        days_before_read.append(loop.world.players[1].age_days)
        for item in arriving:
            inbox.put(item)
        ready = len(arriving)
        arriving.clear()
        return ready

    loop.read_now = read_now
    inbox.put(Deliver(a, wire.Ping(ref="early")))
    loop.step(2, 2.0)
    assert days_before_read == [loop.world.players[1].age_days]  # read after the tick's days
    frame = a.frames[-1]
    assert frame["tick"] == 2 and len([f for f in a.frames if f["tick"] == 2]) == 1
    kinds = [(op["op"], op.get("ref")) for op in frame["ops"]]
    # In the order it happened: the early command, the day, the late one.
    assert kinds[0] == ("pong", "early") and kinds[-1] == ("pong", "late")
    assert ("state", None) in kinds[1:-1]
    assert [op["code"] for op in b.frames[-1]["ops"] if op["op"] == "error"] == ["not_found"]
    assert b.frames[-1]["tick"] == 2
    assert len(inbox) == 0
    # Nothing read: nothing more is drained, the tick goes on as before.
    loop.step(3, 3.0)
    assert len(days_before_read) == 2 and a.frames[-1]["tick"] == 3
