"""The delivery core: who is connected as whom, and what each connection is sent.

Sans-IO beside the engine: no clock, no sockets, nothing awaited. The tick
loop drives it with the time passed in, and the connections it serves are
:class:`Recipient`\\ s, whose ``send_frame`` hands a frame over without
waiting. It owns:

* the sessions and which one holds each player (one per player: a newer
  login replaces the older connection, which gets ``bye`` (replaced));
* the one outbox, :attr:`Delivery.outbox`: this tick's ops by player, in the
  order they happened. The engine appends its game ops to a player's list
  there (``World.ops_for``; the dict is the one the world was made with);
  every other op a connection is sent (errors, ``pong``, ``bye``, a resume's
  ``ack``, broadcasts, the welcome hook's) is added here, into the same list
  so a player's ops keep their order, or into a list of the connection's own
  before it logs in. Only this core takes ops out, frames them and drops them;
* frames: at most one per connection per tick, numbered in the player's
  stream once logged in, seq 0 before;
* the resume ring: each player's last frames, kept a while after a drop so
  a client that comes back with ``resume`` gets exactly what it missed
  (back to its last ``welcome``: from before one, a fresh ``welcome``).

One piece: sessions, the outbox, frame numbers and the ring are one state
(a frame's number is the ring's next, a replaced session hands its stream
on, a ``bye`` decides the last frame and the close), and :meth:`Delivery.flush`
touches all of them for every player a second; split, each half would reach
into the other's dicts on the hottest path of the tick.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs

from .. import protocol as wire

__all__ = ["REPLAY_FRAMES", "RECENT_STREAMS", "RESUME_WINDOW", "Attached", "Delivery", "Recipient"]

# Frames kept per stream for resume (about 16 s of play at one frame a second),
# and how long and how many streams of dropped connections are kept.
REPLAY_FRAMES = 16
RESUME_WINDOW = 60.0
RECENT_STREAMS = 20_000


class Recipient(Protocol):
    """What the delivery core needs of a connection (implemented by
    :class:`baolife.net.session.Session`)."""

    player_id: int | None

    def send_frame(self, frame: bytes) -> bool:
        """Queue an encoded frame without blocking; False if the connection is
        gone or too slow (it is then being dropped)."""

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued."""


# A frame's bytes up to and with its number (protocol.encode_frame's head),
# which the ring does not keep, and where the number starts.
_SEQ_HEAD = wire.FRAME_HEAD + b"%d,%b"
_SEQ_AT = len(wire.FRAME_HEAD)


class _Stream:
    """A player's numbered frame stream and its last frames, for resume.

    The frames kept are the last :meth:`kept` numbered up to ``seq`` (one
    number per frame, in order), so no (number, frame) pair is built per
    frame: such pairs are the collector's to walk, and with one frame per
    player per game day they were most of what its young passes walked at
    16,000 players (docs/BENCHMARKS.md, issue 8). Frame ``n`` sits at
    ``frames[n % REPLAY_FRAMES]`` of a fixed list: a quarter of the memory of
    a bounded deque of the same length, and one slot written per frame
    (docs/BENCHMARKS.md, issue 15: the tick of grown lives). A frame is kept
    without its head up to its number (``{"type":"frame","seq":N,``, what
    :func:`~baolife.protocol.encode_frame` writes first), which :meth:`after`
    writes back: the same bytes, about 28 fewer kept a frame, a fifth of the
    ring (docs/BENCHMARKS.md, issue 15: the interpreter)."""

    __slots__ = ("seq", "base", "frames")

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        # The number the stream started after: frames base + 1 .. seq were made here.
        self.base = seq
        self.frames: list[bytes] = [b""] * REPLAY_FRAMES

    def append(self, frame: bytes) -> int:
        """Number and keep the next frame (as encode_frame made it, with
        this number); returns its number."""
        seq = self.seq = self.seq + 1
        # The first comma after the head's fixed part ends the number.
        self.frames[seq % REPLAY_FRAMES] = frame[frame.index(b",", _SEQ_AT) + 1 :]
        return seq

    def skip(self) -> int:
        """Number the next frame without keeping it, nor any before it: a
        frame that carries a ``welcome``. A resume from before it gets a
        fresh ``welcome`` instead of a replay (the same view, now), so the
        ring holds no snapshot: at 500 logins a second the rings held 8,000
        of them (12 KB each), and the C heap kept their 100 MB resident
        after they left (docs/BENCHMARKS.md, issue 15). Returns its number."""
        seq = self.seq = self.seq + 1
        self.base = seq
        return seq

    def kept(self) -> int:
        """How many of the last frames are here."""
        made = self.seq - self.base
        return made if made < REPLAY_FRAMES else REPLAY_FRAMES

    def covers(self, last_seq: int) -> bool:
        """True if every frame after ``last_seq`` is still here."""
        if last_seq == self.seq:
            return True
        return last_seq < self.seq and self.seq - self.kept() <= last_seq

    def after(self, last_seq: int) -> list[bytes]:
        """The frames numbered above ``last_seq`` that are still here, in order."""
        frames = self.frames
        first = max(last_seq, self.seq - self.kept()) + 1
        return [_SEQ_HEAD % (n, frames[n % REPLAY_FRAMES]) for n in range(first, self.seq + 1)]


@attrs.frozen
class Attached:
    """What :meth:`Delivery.attach` did. ``gone``: the connection had ended
    (nothing attached); ``released``: a hold on the player ended (the
    connection gone, or an older one replaced); ``resumed``: the missed
    frames were replayed and the stream goes on (no snapshot is due)."""

    gone: bool = False
    released: bool = False
    resumed: bool = False


_GONE = Attached(gone=True, released=True)


def _frame(stream: _Stream | None, tick: int, ops: list[wire.Op], counts: dict[str, int]) -> bytes:
    """Encode one frame, numbered in the session's stream (and kept for
    resume) once logged in, seq 0 before; its ops are counted by kind."""
    # A plain dict loop: about 0.25 us per op, a fifth of encoding the frame
    # (Counter.update costs three times as much for a frame's few ops).
    for op in ops:
        kind = op.op
        counts[kind] = counts.get(kind, 0) + 1
    # encode_frame's bytes are exact-size; the ring keeps a copy without the head.
    if stream is None:
        return wire.encode_frame(0, tick, ops)
    frame = wire.encode_frame(stream.seq + 1, tick, ops)
    if any(op.op == "welcome" for op in ops):
        stream.skip()
    else:
        stream.append(frame)
    return frame


class Delivery:
    """Sessions, streams and the one outbox; see the module docstring.

    ``welcome(pid)`` gives ops sent right after the snapshot at every attach
    (after the ``ack`` of a resume that replays instead)."""

    def __init__(
        self,
        outbox: dict[int, list[wire.Op]],
        *,
        welcome: Callable[[int], list[wire.Op]] | None = None,
    ) -> None:
        self.outbox = outbox
        self.welcome = welcome
        self.sessions: set[Recipient] = set()
        self.by_player: dict[int, Recipient] = {}
        # Ops of connections not logged in (or replaced this tick), by connection.
        self._session_ops: dict[Recipient, list[wire.Op]] = {}
        self._closing: list[tuple[Recipient, int, str]] = []
        self._closing_set: set[Recipient] = set()
        self._streams: dict[Recipient, _Stream] = {}
        self._recent: OrderedDict[int, tuple[_Stream, float]] = OrderedDict()
        self.error_counts: Counter[str] = Counter()
        # Ops sent, by kind: counted into a dict per frame (no metric call per
        # op); read by the metrics collector at scrape time.
        self.op_counts: dict[str, int] = {}

    # ----------------------------------------------------------------- sessions

    def add(self, session: Recipient) -> None:
        """A new connection (before it logs in)."""
        self.sessions.add(session)

    def holds(self, session: Recipient) -> int | None:
        """The player ``session`` is logged in as, if it still holds them."""
        pid = session.player_id
        if pid is not None and self.by_player.get(pid) is session:
            return pid
        return None

    def open(self, session: Recipient) -> bool:
        """True while ``session`` is connected and not saying its ``bye``."""
        return session in self.sessions and session not in self._closing_set

    def attach(self, session: Recipient, pid: int, resume: int | None) -> Attached:
        """Make ``session`` the one holding ``pid`` (register, login, or a
        resume from ``last_seq`` ``resume``). An older session of the player
        gets what this tick made so far, then ``bye`` (replaced) and close
        4000. A resume whose missed frames are all kept has them sent now and
        goes on with the same stream; otherwise a fresh stream starts (and
        the caller sends a snapshot). The caller then joins the player to the
        world and calls :meth:`joined`."""
        if session not in self.sessions:
            return _GONE  # the connection went away while its login was loading
        old = self.by_player.get(pid)
        if old is session:
            old = None
        stream: _Stream | None = None
        if resume is not None:
            live = self._streams.get(old) if old is not None else None
            if old is not None and live is not None:
                stream = live
                # The old connection says its bye on a copy; the stream goes on here.
                self._streams[old] = _Stream(live.seq)
            else:
                recent = self._recent.pop(pid, None)
                stream = recent[0] if recent is not None else None
            if stream is not None and not stream.covers(resume):
                stream = None
        if old is not None:
            stale = self.outbox.pop(pid, [])
            stale.append(wire.Bye(reason="replaced"))
            self._session_ops.setdefault(old, []).extend(stale)
            self._close_after_flush(old, wire.CloseCode.REPLACED, "replaced")
        session.player_id = pid
        self.by_player[pid] = session
        pending = self._session_ops.pop(session, None)
        if stream is not None and resume is not None:
            # Resume: replay what the client missed, then go on with the same stream.
            self._streams[session] = stream
            for frame in stream.after(resume):
                session.send_frame(frame)
        else:
            self._recent.pop(pid, None)
            self._streams[session] = _Stream()
            stream = None
        if pending:
            self._player_ops(pid).extend(pending)
        return Attached(released=old is not None, resumed=stream is not None)

    def joined(self, pid: int, attached: Attached, ref: Any = None) -> None:
        """After the world has the player: the ``ack`` (``ref``) of a resume
        that replayed, then the welcome hook's ops."""
        if attached.resumed:
            self._player_ops(pid).append(wire.Ack(ref=ref))
        if self.welcome is not None:
            ops = self.welcome(pid)
            if ops:
                self._player_ops(pid).extend(ops)

    def detach(self, session: Recipient, now: float) -> int | None:
        """The connection ended; returns the player whose hold it released
        (their stream kept a while for resume, their unsent ops dropped)."""
        self.sessions.discard(session)
        self._session_ops.pop(session, None)
        stream = self._streams.pop(session, None)
        pid = session.player_id
        if pid is None or self.by_player.get(pid) is not session:
            return None
        del self.by_player[pid]
        self.outbox.pop(pid, None)
        if stream is not None:
            # Kept a while so a dropped client can resume where it was.
            self._recent[pid] = (stream, now)
            if len(self._recent) > RECENT_STREAMS:
                self._recent.popitem(last=False)
        return pid

    def expire(self, now: float) -> None:
        """Forget the streams of players gone longer than the resume window."""
        limit = now - RESUME_WINDOW
        recent = self._recent
        while recent:
            pid, (_, left_at) = next(iter(recent.items()))
            if left_at > limit:
                return
            del recent[pid]

    # ----------------------------------------------------------------- ops

    def _player_ops(self, pid: int) -> list[wire.Op]:
        ops = self.outbox.get(pid)
        if ops is None:
            ops = self.outbox[pid] = []
        return ops

    def ops_for(self, session: Recipient) -> list[wire.Op]:
        """The list this tick's ops for ``session`` go into: a logged-in
        session's is the player's list in the outbox (so everything for that
        player stays in the order it happened), another's its own."""
        pid = session.player_id
        if pid is not None and self.by_player.get(pid) is session:
            return self._player_ops(pid)
        ops = self._session_ops.get(session)
        if ops is None:
            ops = self._session_ops[session] = []
        return ops

    def reject(self, session: Recipient, error: wire.Error) -> None:
        """Send a connection the ``error`` its message met on the way in
        (counted by code), unless it is gone or saying its ``bye``."""
        if self.open(session):
            self._refuse(session, error)

    def _refuse(self, session: Recipient, error: wire.Error) -> None:
        self.error_counts[error.code] += 1
        self.ops_for(session).append(error)

    def admit(self, session: Recipient, cmd: wire.Command) -> int | None:
        """The player a command is for when the game should apply it; None
        when it is answered (or dropped) here. The one place that decides
        what a connection may send as it is (logged in or not), from
        ``Command.needs_login``."""
        if session not in self.sessions or session in self._closing_set:
            return None
        if not cmd.needs_login:
            # The reader runs a login itself (it waits on the store) while the
            # connection is not logged in; one that comes here is a second login.
            self._refuse(
                session, wire.Error(code="not_allowed", message="already logged in; log out first", ref=cmd.ref)
            )
            return None
        pid = self.holds(session)
        if pid is None:
            # PROTOCOL.md: before login every command that needs it is refused.
            self._refuse(
                session,
                wire.Error(code="unauthenticated", message="log in first (register, login or resume)", ref=cmd.ref),
            )
            return None
        if isinstance(cmd, wire.Ping):
            self._player_ops(pid).append(wire.Pong(ref=cmd.ref))
            return None
        if isinstance(cmd, wire.Logout):
            self.kick(session, "logout", wire.CloseCode.LOGOUT)
            return None
        return pid

    def kick(self, session: Recipient, reason: str, code: int, message: str | None = None) -> None:
        """``bye`` ``reason`` (with ``message`` if given), then close with
        ``code`` after this tick's frame. Nothing of this core's follows the
        ``bye``; the game's ops of the same tick still go in that frame,
        before it (:meth:`flush`). A connection gone or already saying its
        ``bye`` is left as it is."""
        if self.open(session):
            self.ops_for(session).append(wire.Bye(reason=reason, message=message))
            self._close_after_flush(session, code, reason)

    def broadcast(self, ops: Iterable[wire.Op]) -> None:
        """``ops`` to every logged-in player in this tick's frame (not to a
        session already saying its ``bye``)."""
        closing = self._closing_set
        outbox = self.outbox
        for pid, session in self.by_player.items():
            if session not in closing:
                mine = outbox.get(pid)
                if mine is None:
                    mine = outbox[pid] = []
                mine.extend(ops)

    def goodbye(self, reason: str, code: int) -> None:
        """:meth:`kick` every connection (shutdown)."""
        for session in list(self.sessions):
            self.kick(session, reason, code)

    def _close_after_flush(self, session: Recipient, code: int, reason: str) -> None:
        # After its bye, a closing session gets nothing more.
        self._closing.append((session, code, reason))
        self._closing_set.add(session)

    def _bye_last(self) -> None:
        """PROTOCOL.md: ``bye`` ends the connection, so nothing follows it in
        its frame. The game may still add ops for a leaving player later in
        the tick (a logout or a kick is applied before the player's day
        runs): the bye moves behind them, so the frame keeps everything the
        tick made, in order, and a client that resumes from that frame's
        seq misses no change."""
        for session, _code, _reason in self._closing:
            pid = self.holds(session)
            ops = self.outbox.get(pid) if pid is not None else self._session_ops.get(session)
            if not ops or isinstance(ops[-1], wire.Bye):
                continue
            for at in range(len(ops) - 2, -1, -1):
                if isinstance(ops[at], wire.Bye):
                    ops.append(ops.pop(at))
                    break

    # ----------------------------------------------------------------- frames

    def flush(self, tick: int) -> tuple[int, int]:
        """Send this tick's frames, at most one per connection; returns
        (frames, bytes). The outbox is empty afterwards.

        All frames are encoded first, then all handed over: each hand-over is
        a system call whose kernel work evicts the encoder's code and data
        from the CPU caches, so alternating the two cost 3-5 us more per
        frame, of about 25 (docs/BENCHMARKS.md, issue 15). What is held
        between the two passes is exact-size (what
        :func:`~baolife.protocol.encode_frame` returns), not a 4 KiB encoder
        block each; the resume ring keeps its own copy, without the head."""
        op_counts = self.op_counts
        by_player = self.by_player
        streams = self._streams
        outbox = self.outbox
        encode = wire.encode_frame
        sessions: list[Recipient] = []
        frames: list[bytes] = []
        if self._closing:
            self._bye_last()
        for pid, ops in outbox.items():
            session = by_player.get(pid)
            if session is None or not ops:
                continue
            # _frame, inlined: this loop runs for every player a second.
            if len(ops) == 1:
                kind = ops[0].op  # most frames: a player's state of the second
                op_counts[kind] = op_counts.get(kind, 0) + 1
                snapshot = kind == "welcome"
            else:
                snapshot = False
                for op in ops:
                    kind = op.op
                    op_counts[kind] = op_counts.get(kind, 0) + 1
                    if kind == "welcome":
                        snapshot = True
            stream = streams.get(session)
            if stream is None:
                frame = encode(0, tick, ops)
            else:
                frame = encode(stream.seq + 1, tick, ops)
                if snapshot:
                    stream.skip()  # a welcome is not kept: a resume from before it gets a fresh one
                else:
                    stream.append(frame)  # the ring's slots are _Stream's own
            sessions.append(session)
            frames.append(frame)
        outbox.clear()
        if self._session_ops:
            for session, ops in self._session_ops.items():
                if ops:
                    sessions.append(session)
                    frames.append(_frame(streams.get(session), tick, ops, op_counts))
            self._session_ops.clear()
        nbytes = 0
        for session, frame in zip(sessions, frames, strict=True):
            session.send_frame(frame)
            nbytes += len(frame)
        return len(frames), nbytes

    def close_said_bye(self, now: float) -> list[int]:
        """Close the connections whose ``bye`` went out in this tick's frames
        (after :meth:`flush`); returns the players they released."""
        released: list[int] = []
        if self._closing:
            for session, code, reason in self._closing:
                session.close(code, reason)
                pid = self.detach(session, now)
                if pid is not None:
                    released.append(pid)
            self._closing.clear()
            self._closing_set.clear()
        return released
