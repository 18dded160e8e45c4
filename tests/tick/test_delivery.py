"""The delivery core on its own: no clock, no loop, no engine; time is passed in."""

from __future__ import annotations

import random
import tracemalloc
from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson

from baolife import protocol as wire
from baolife.tick.delivery import RECENT_STREAMS, REPLAY_FRAMES, RESUME_WINDOW, Delivery, _Stream


class FakeSession:
    def __init__(self) -> None:
        self.player_id: int | None = None
        self.frames: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send_frame(self, frame: bytes) -> bool:
        self.raw.append(frame)
        self.frames.append(orjson.loads(frame))
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def ops(self) -> list[dict[str, Any]]:
        return [op for f in self.frames for op in f["ops"]]


def logged_in(d: Delivery, pid: int) -> FakeSession:
    s = FakeSession()
    d.add(s)
    attached = d.attach(s, pid, None)
    assert not attached.gone and not attached.resumed
    d.joined(pid, attached)
    return s


def game_op(d: Delivery, pid: int, age: int) -> None:
    """What the engine does: append to the player's list in the one outbox."""
    d.outbox.setdefault(pid, []).append(wire.State({"age_days": age}))


def test_a_frame_per_player_numbered_in_order_and_the_outbox_left_empty() -> None:
    d = Delivery({})
    s = logged_in(d, 7)
    for tick in range(1, 6):
        game_op(d, 7, tick)
        game_op(d, 7, tick * 10)
        assert d.flush(tick)[0] == 1
        assert d.outbox == {}
    assert [(f["seq"], f["tick"], len(f["ops"])) for f in s.frames] == [(i, i, 2) for i in range(1, 6)]
    assert d.op_counts == {"state": 10}
    assert d.flush(6) == (0, 0)  # nothing to say, no frame


def test_what_a_connection_was_told_before_login_goes_first_in_its_stream() -> None:
    d = Delivery({})
    s = FakeSession()
    d.add(s)
    assert d.admit(s, wire.Ping(ref="early")) is None
    d.flush(1)
    assert s.frames[0]["seq"] == 0 and s.ops()[0]["code"] == "unauthenticated"
    d.reject(s, wire.Error(code="bad_request", message="no", ref="x"))  # before login, in the same tick as it
    attached = d.attach(s, 3, None)
    game_op(d, 3, 1)  # the world's welcome comes after
    d.joined(3, attached)
    d.flush(2)
    assert [(f["seq"], [op["op"] for op in f["ops"]]) for f in s.frames[1:]] == [(1, ["error", "state"])]
    assert d.error_counts == {"unauthenticated": 1, "bad_request": 1}


def test_a_game_command_is_admitted_for_its_player_and_ping_and_logout_are_answered_here() -> None:
    d = Delivery({})
    s = logged_in(d, 5)
    act = wire.Act(action="nap", ref="a")
    assert d.admit(s, act) == 5
    assert d.admit(s, wire.Ping(ref="p")) is None
    assert d.admit(s, wire.Login(token="t", ref="l")) is None  # noqa: S106
    assert d.admit(s, wire.Logout(ref="o")) is None
    assert d.admit(s, act) is None  # after its bye, nothing more
    d.flush(1)
    assert [(op["op"], op.get("ref") or op.get("reason")) for op in s.ops()] == [
        ("pong", "p"),
        ("error", "l"),
        ("bye", "logout"),
    ]
    assert s.closed is None  # closed only after the frame with the bye went out
    assert d.close_said_bye(1.0) == [5]
    assert s.closed == (1000, "logout") and d.by_player == {} and d.sessions == set()


def test_the_bye_is_the_last_op_even_when_the_game_adds_ops_after_it_in_its_tick() -> None:
    # A logout and a kick are applied before the players' days run in the same tick.
    d = Delivery({})
    leaving, kicked, staying = logged_in(d, 1), logged_in(d, 2), logged_in(d, 3)
    game_op(d, 1, 10)
    assert d.admit(leaving, wire.Logout(ref="o")) is None
    d.kick(kicked, "kicked", wire.CloseCode.KICKED, "enough")
    for pid in (1, 2, 3):
        game_op(d, pid, 11)  # the day, after the bye was queued
    d.flush(1)
    assert [(op["op"], op.get("age_days") or op.get("reason")) for op in leaving.ops()] == [
        ("state", 10),
        ("state", 11),
        ("bye", "logout"),
    ]
    assert [op["op"] for op in kicked.ops()] == ["state", "bye"] and kicked.ops()[-1]["message"] == "enough"
    assert [op["op"] for op in staying.ops()] == ["state"]
    assert sorted(d.close_said_bye(1.0)) == [1, 2]
    assert (leaving.closed, kicked.closed) == ((1000, "logout"), (wire.CloseCode.KICKED, "kicked"))


def test_a_newer_login_takes_the_player_and_the_older_gets_what_was_made_for_it() -> None:
    d = Delivery({})
    old = logged_in(d, 1)
    game_op(d, 1, 1)
    d.flush(1)
    game_op(d, 1, 2)  # made this tick, before the new login arrived
    new = FakeSession()
    d.add(new)
    attached = d.attach(new, 1, None)
    assert attached.released and not attached.resumed and not attached.gone
    d.joined(1, attached)
    game_op(d, 1, 3)
    d.flush(2)
    assert d.close_said_bye(0.0) == []  # the player stays, held by the new session
    assert old.frames[-1]["seq"] == 2 and old.frames[-1]["ops"] == [
        {"op": "state", "age_days": 2},
        {"op": "bye", "reason": "replaced"},
    ]
    assert old.closed == (4000, "replaced")
    assert new.frames == [{"type": "frame", "seq": 1, "tick": 2, "ops": [{"op": "state", "age_days": 3}]}]
    assert d.by_player == {1: new}


def test_a_resume_over_a_live_connection_continues_its_stream() -> None:
    d = Delivery({})
    old = logged_in(d, 1)
    for tick in range(1, 6):
        game_op(d, 1, tick)
        d.flush(tick)
    new = FakeSession()
    d.add(new)
    attached = d.attach(new, 1, 3)  # it had seen up to frame 3
    assert attached.resumed and attached.released
    assert new.raw == old.raw[3:]  # frames 4 and 5, byte for byte
    d.joined(1, attached, ref="r")
    game_op(d, 1, 6)
    d.flush(6)
    d.close_said_bye(10.0)
    assert new.frames[-1]["seq"] == 6 and new.frames[-1]["ops"][0] == {"op": "ack", "ref": "r"}
    # The old connection's bye was numbered on a copy, not in the stream that goes on.
    assert old.frames[-1] == {"type": "frame", "seq": 6, "tick": 6, "ops": [{"op": "bye", "reason": "replaced"}]}


def test_a_dropped_players_stream_is_kept_for_the_resume_window_of_the_time_passed_in() -> None:
    d = Delivery({})
    s = logged_in(d, 1)
    for tick in range(1, REPLAY_FRAMES + 4):
        game_op(d, 1, tick)
        d.flush(tick)
    game_op(d, 1, 99)  # unsent when the connection ends: dropped
    assert d.detach(s, 100.0) == 1 and 1 not in d.outbox
    d.expire(100.0 + RESUME_WINDOW - 1)
    back = FakeSession()
    d.add(back)
    last = REPLAY_FRAMES + 3
    too_old = d.attach(back, 1, last - REPLAY_FRAMES - 1)  # a frame it missed is gone
    assert not too_old.resumed and back.frames == []
    d.detach(back, 200.0)
    again = FakeSession()
    d.add(again)
    # The failed resume above started a fresh stream, which the detach kept instead.
    assert not d.attach(again, 1, last).resumed
    d.detach(again, 200.0)
    d.expire(200.0 + RESUME_WINDOW)
    late = FakeSession()
    d.add(late)
    assert not d.attach(late, 1, 0).resumed  # the window had passed: a fresh start


def test_a_resume_within_the_window_replays_exactly_what_was_missed() -> None:
    d = Delivery({})
    s = logged_in(d, 1)
    for tick in range(1, 8):
        game_op(d, 1, tick)
        d.flush(tick)
    d.detach(s, 50.0)
    d.expire(50.0 + RESUME_WINDOW - 0.5)
    back = FakeSession()
    d.add(back)
    assert d.attach(back, 1, 4).resumed
    assert back.raw == s.raw[4:]


def test_a_resume_from_before_a_welcome_gets_a_fresh_one_and_from_it_a_replay() -> None:
    # The ring keeps no snapshot (12 KB each, issue 15): what came before the
    # last welcome is answered with a fresh welcome, the same view as of now.
    d = Delivery({})
    s = logged_in(d, 1)
    for tick in range(1, 4):
        game_op(d, 1, tick)
        d.flush(tick)
    d.outbox.setdefault(1, []).append(wire.Welcome(player=1, snapshot={"age_days": 4}))
    game_op(d, 1, 4)
    d.flush(4)  # frame 4: a new life's welcome and a state after it
    for tick in range(5, 8):
        game_op(d, 1, tick)
        d.flush(tick)
    assert [f["seq"] for f in s.frames] == list(range(1, 8)) and s.frames[3]["ops"][0]["op"] == "welcome"
    d.detach(s, 10.0)
    back = FakeSession()
    d.add(back)
    assert d.attach(back, 1, 4).resumed  # it had the welcome: frames 5-7 replayed
    assert back.raw == s.raw[4:]
    d.detach(back, 11.0)
    before = FakeSession()
    d.add(before)
    attached = d.attach(before, 1, 3)  # it missed the welcome: a fresh stream
    assert not attached.resumed and before.frames == []
    d.outbox.setdefault(1, []).append(wire.Welcome(player=1, snapshot={"age_days": 7}))
    d.flush(8)
    assert [(f["seq"], f["ops"][0]["op"]) for f in before.frames] == [(1, "welcome")]


def test_kept_streams_are_bounded() -> None:
    d = Delivery({})
    for pid in range(RECENT_STREAMS + 5):
        s = FakeSession()
        d.add(s)
        d.attach(s, pid, None)
        d.detach(s, 0.0)
    assert len(d._recent) == RECENT_STREAMS
    assert 0 not in d._recent and RECENT_STREAMS + 4 in d._recent


def test_a_connection_gone_before_its_login_finished_gets_nothing() -> None:
    d = Delivery({})
    s = FakeSession()
    d.add(s)
    d.detach(s, 0.0)
    attached = d.attach(s, 1, None)
    assert attached.gone and attached.released
    assert d.by_player == {} and s.player_id is None


def test_kick_says_bye_with_the_message_then_closes_once() -> None:
    d = Delivery({})
    s = logged_in(d, 2)
    d.kick(s, "kicked", wire.CloseCode.KICKED, "be nice")
    d.kick(s, "idle", 4001)  # already saying its bye: no second one
    d.flush(1)
    assert d.close_said_bye(1.0) == [2]
    assert s.ops() == [{"op": "bye", "reason": "kicked", "message": "be nice"}]
    assert s.closed == (wire.CloseCode.KICKED, "kicked")


class DroppingSession(FakeSession):
    """A connection being dropped: it takes nothing (Session.send_frame's False)."""

    def send_frame(self, frame: bytes) -> bool:
        return False


def test_every_connection_gets_its_one_frame_whatever_another_does_with_its_own() -> None:
    d = Delivery({})
    first = logged_in(d, 1)
    dropping = DroppingSession()
    d.add(dropping)
    d.joined(2, d.attach(dropping, 2, None))
    last = logged_in(d, 3)
    stranger = FakeSession()
    d.add(stranger)
    for pid in (1, 2, 3):
        game_op(d, pid, pid)
        game_op(d, pid, 10 * pid)
    d.reject(stranger, wire.Error(code="bad_request", message="no"))
    frames, nbytes = d.flush(1)
    assert frames == 4  # handed over, taken or not
    assert [[op["age_days"] for op in s.ops()] for s in (first, last)] == [[1, 10], [3, 30]]
    assert [f["seq"] for f in stranger.frames] == [0] and stranger.ops()[0]["code"] == "bad_request"
    assert nbytes == sum(len(raw) for s in (first, last, stranger) for raw in s.raw) + len(
        wire.encode_frame(1, 1, [wire.State({"age_days": 2}), wire.State({"age_days": 20})])
    )
    assert d.op_counts == {"state": 6, "error": 1}


def test_the_resume_ring_keeps_what_a_bounded_deque_of_the_last_frames_would() -> None:
    # The ring is a fixed list indexed by frame number (issue 15); it must keep
    # and replay exactly what a deque(maxlen=REPLAY_FRAMES) of the stream's
    # frames did, for streams started at any number (a replaced connection's
    # copy), emptied at each frame that carries a welcome.
    rng = random.Random(3)
    for _ in range(500):
        start = rng.randint(0, 50)
        stream, reference, seq = _Stream(start), deque[bytes](maxlen=REPLAY_FRAMES), start
        for _ in range(rng.randint(0, 3 * REPLAY_FRAMES)):
            seq += 1
            ops: list[wire.Op] = [wire.State({"age_days": rng.randrange(10**6)})] * rng.randint(1, 3)
            frame = wire.encode_frame(seq, rng.randrange(10**9), ops)
            if rng.random() < 0.1:  # a frame with a welcome: numbered, nothing before it kept
                assert stream.skip() == seq
                reference.clear()
                continue
            assert stream.append(frame) == seq
            reference.append(frame)
        for last in range(start - 3, seq + 3):
            assert stream.covers(last) == (last == seq or seq - len(reference) <= last < seq)
            assert stream.after(last) == list(reference)[max(len(reference) - (seq - last), 0) :]


def day_frames(seed: int, streams: int) -> Iterator[list[bytes]]:
    """``streams`` lists of sixteen frames of a day's state, as the tick makes them."""
    rng = random.Random(seed)
    for _ in range(streams):
        fields = {"age_days": rng.randrange(30_000), "money": rng.randrange(-5_000, 900_000)}
        ops: list[wire.Op] = [wire.State(fields)]
        yield [wire.encode_frame(seq, 10**5 + rng.randrange(10**5), ops) for seq in range(1, REPLAY_FRAMES + 1)]


def test_the_resume_ring_keeps_a_frame_in_less_than_its_bytes() -> None:
    # A kept frame loses its head up to its number, written back on replay
    # (the same bytes). 2,000 streams of sixteen frames of a day's state,
    # each frame held by the ring alone once kept (as after a flush), take at
    # most 2,100 bytes a stream (2,260 when the ring kept whole frames).
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        streams = []
        for frames in day_frames(5, 2_000):
            stream = _Stream()
            while frames:
                stream.append(frames.pop(0))
            streams.append(stream)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held / len(streams) <= 2_100
    assert [stream.after(0) for stream in streams] == list(day_frames(5, 2_000))
