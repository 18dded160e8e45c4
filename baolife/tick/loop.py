"""The tick loop: the one task that changes game state.

Connections, AI workers and the saver never touch the :class:`World`: they
put items into the :class:`Inbox` (a synchronous, bounded deque), and each
tick the loop applies them in arrival order, advances the players whose day
boundary it is, then builds at most one frame per connection and hands it to
that connection's writer without waiting (:class:`Recipient.send_frame`).

The loop is drift-free (``deadline += period``) and counts overruns; when it
falls more than a few periods behind it skips ahead rather than bursting.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from .. import protocol as wire
from ..model import Player
from .engine import World

__all__ = ["Attach", "Deliver", "Detach", "Inbox", "NpcReply", "Recipient", "TickLoop", "Kick"]


class Recipient(Protocol):
    """What the tick loop needs of a connection (implemented by
    :class:`baolife.net.session.Session`)."""

    player_id: int | None
    seq: int

    def send_frame(self, frame: bytes) -> bool:
        """Queue an encoded frame without blocking; False if the connection is
        gone or too slow (it is then being dropped)."""

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued."""


@attrs.frozen
class Deliver:
    """A parsed message (or its rejection) from a connection."""

    session: Recipient
    command: wire.Command | wire.Error


@attrs.frozen
class Attach:
    """A connection logged in as ``player`` (register, login or resume).
    ``resume`` is the ``last_seq`` of a resume."""

    session: Recipient
    player: Player
    ref: Any = None
    token: str | None = None
    resume: int | None = None


# Frames kept per stream for resume (about 16 s of play at one frame a second),
# and how long and how many streams of dropped connections are kept.
REPLAY_FRAMES = 16
RESUME_WINDOW = 60.0
RECENT_STREAMS = 20_000


class _Stream:
    """A player's numbered frame stream and its last frames, for resume.

    The frames kept are numbered ``seq - len(frames) + 1`` to ``seq`` (one
    number per frame, in order), so no (number, frame) pair is built per
    frame: such pairs are the collector's to walk, and with one frame per
    player per game day they were most of what its young passes walked at
    16,000 players (docs/BENCHMARKS.md, issue 8)."""

    __slots__ = ("seq", "frames")

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self.frames: deque[bytes] = deque(maxlen=REPLAY_FRAMES)

    def append(self, frame: bytes) -> int:
        """Number and keep the next frame; returns its number."""
        self.seq += 1
        self.frames.append(frame)
        return self.seq

    def covers(self, last_seq: int) -> bool:
        """True if every frame after ``last_seq`` is still here."""
        if last_seq == self.seq:
            return True
        return last_seq < self.seq and self.seq - len(self.frames) <= last_seq

    def after(self, last_seq: int) -> list[bytes]:
        """The frames numbered above ``last_seq`` that are still here, in order."""
        skip = len(self.frames) - (self.seq - last_seq)
        return list(self.frames)[max(skip, 0) :]


@attrs.frozen
class Detach:
    """A connection ended (closed, aborted, or dropped)."""

    session: Recipient


@attrs.frozen
class Kick:
    """Close a connection with ``bye`` ``reason`` then ``code``."""

    session: Recipient
    reason: str
    code: int


@attrs.frozen
class NpcReply:
    player: int
    life: int
    npc: int
    ref: Any
    text: str


InboxItem = Deliver | Attach | Detach | Kick | NpcReply


def _count_kinds(counts: dict[str, int], ops: list[wire.Op]) -> None:
    # A plain dict loop: about 0.25 us per op, a fifth of encoding the frame
    # (Counter.update costs three times as much for a frame's few ops).
    for op in ops:
        kind = op.op
        counts[kind] = counts.get(kind, 0) + 1


class Inbox:
    """Items for the next tick, in arrival order. ``put`` never blocks; it
    returns False when ``limit`` items are already waiting."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[InboxItem] = deque()

    def put(self, item: InboxItem, *, force: bool = False) -> bool:
        """Queue ``item``. Player messages are refused past ``limit``;
        bookkeeping (attach, detach, NPC replies) and ``force``d items (the
        errors that tell a client it was refused) always go in, bounded by
        the connections and workers that make them."""
        if len(self._items) >= self.limit and not force and isinstance(item, (Deliver, Kick)):
            return False
        self._items.append(item)
        return True

    def __len__(self) -> int:
        return len(self._items)

    def drain(self) -> deque[InboxItem]:
        items, self._items = self._items, deque()
        return items


@attrs.frozen
class TickStatistics:
    tick: int
    overruns: int
    sessions: int
    online: int
    last_tick_seconds: float
    ops: dict[str, int]


class TickLoop:
    """Drives the world at ``tick_hz``; see the module docstring.

    ``on_tick(tick, seconds, late, frames, frame_bytes)`` is called after every
    tick (``late``: how long after its deadline the tick started)
    (metrics, watchdog); ``mark_dirty(pids)`` receives the players changed by
    the tick; ``on_online(pid, online)`` tracks presence for the directory.
    """

    def __init__(
        self,
        world: World,
        inbox: Inbox,
        *,
        tick_hz: float,
        mark_dirty: Callable[[set[int]], None],
        on_online: Callable[[int, bool], None] = lambda pid, online: None,
        on_tick: Callable[[int, float, float, int, int], None] = lambda *a: None,
    ) -> None:
        self.world = world
        self.inbox = inbox
        self.period = 1.0 / tick_hz
        self.mark_dirty = mark_dirty
        self.on_online = on_online
        self.on_tick = on_tick
        self.tick = 0
        self.overruns = 0
        self.last_tick_seconds = 0.0
        self._late = 0.0
        self.sessions: set[Recipient] = set()
        self.by_player: dict[int, Recipient] = {}
        self._session_ops: dict[Recipient, list[wire.Op]] = {}
        self._closing: list[tuple[Recipient, int, str]] = []
        self._closing_set: set[Recipient] = set()
        self._streams: dict[Recipient, _Stream] = {}
        self._recent: OrderedDict[int, tuple[_Stream, float]] = OrderedDict()
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self.advanced = trio.Event()
        self.error_counts: Counter[str] = Counter()
        # Ops sent, by kind: counted into a dict per frame (no metric call per
        # op); read by the metrics collector at scrape time.
        self.op_counts: dict[str, int] = {}

    # ----------------------------------------------------------------- lifecycle

    def statistics(self) -> TickStatistics:
        return TickStatistics(
            tick=self.tick,
            overruns=self.overruns,
            sessions=len(self.sessions),
            online=len(self.by_player),
            last_tick_seconds=self.last_tick_seconds,
            ops=dict(self.op_counts),
        )

    def add_session(self, session: Recipient) -> None:
        """Register a new connection (before it logs in)."""
        self.sessions.add(session)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick until :meth:`stop`; then say ``bye`` (shutdown) to every
        connection and close it with 1001, at a tick boundary."""
        deadline = trio.current_time()
        task_status.started()
        try:
            while not self._stop.is_set():
                self.tick += 1
                self._late = max(0.0, trio.current_time() - deadline)
                self.step(self.tick)
                deadline += self.period
                now = trio.current_time()
                if now > deadline:
                    self.overruns += 1
                    if now - deadline > 5 * self.period:
                        deadline = now  # far behind: skip ahead instead of bursting
                with trio.move_on_at(deadline):
                    await self._stop.wait()
            self._shutdown()
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Stop at the next tick boundary and wait until the goodbyes are queued."""
        self._stop.set()
        await self._stopped.wait()

    # ----------------------------------------------------------------- one tick

    def step(self, tick: int) -> None:
        """One whole tick: commands, days, frames, dirty marks. Never awaits."""
        started = time.perf_counter()
        world = self.world
        for item in self.inbox.drain():
            self._handle(item, tick)
        world.advance(tick)
        frames, nbytes = self._flush(tick)
        if tick % 64 == 0 and self._recent:
            self._expire_streams()
        changed = world.take_changed()
        if changed:
            self.mark_dirty(changed)
        self.last_tick_seconds = time.perf_counter() - started
        self.on_tick(tick, self.last_tick_seconds, self._late, frames, nbytes)
        if not self.advanced.is_set():
            self.advanced.set()

    def _ops_for(self, session: Recipient) -> list[wire.Op]:
        # A logged-in session's ops share the player's list, so everything
        # for that player stays in the order it happened.
        pid = session.player_id
        if pid is not None and self.by_player.get(pid) is session:
            return self.world.ops_for(pid)
        ops = self._session_ops.get(session)
        if ops is None:
            ops = self._session_ops[session] = []
        return ops

    def _handle(self, item: InboxItem, tick: int) -> None:
        if isinstance(item, Deliver):
            self._deliver(item.session, item.command, tick)
        elif isinstance(item, NpcReply):
            self.world.npc_reply(item.player, item.life, item.npc, item.ref, item.text)
        elif isinstance(item, Attach):
            self._attach(item, tick)
        elif isinstance(item, Detach):
            self._detach(item.session)
        elif isinstance(item, Kick):
            if item.session in self.sessions and item.session not in self._closing_set:
                self._ops_for(item.session).append(wire.Bye(reason=item.reason))
                self._close_after_flush(item.session, item.code, item.reason)

    def _close_after_flush(self, session: Recipient, code: int, reason: str) -> None:
        # After its bye, a closing session gets nothing more.
        self._closing.append((session, code, reason))
        self._closing_set.add(session)

    def _deliver(self, session: Recipient, cmd: wire.Command | wire.Error, tick: int) -> None:
        # The one place that decides what a connection may send as it is
        # (logged in or not), from Command.needs_login.
        if session not in self.sessions or session in self._closing_set:
            return
        if isinstance(cmd, wire.Error):
            self.error_counts[cmd.code] += 1
            self._ops_for(session).append(cmd)
        elif not cmd.needs_login:
            # The reader runs a login itself (it waits on the store) while the
            # connection is not logged in; one that comes here is a second login.
            self.error_counts["not_allowed"] += 1
            self._ops_for(session).append(
                wire.Error(code="not_allowed", message="already logged in; log out first", ref=cmd.ref)
            )
        elif session.player_id is None or self.by_player.get(session.player_id) is not session:
            # PROTOCOL.md: before login every command that needs it is refused.
            self.error_counts["unauthenticated"] += 1
            self._ops_for(session).append(
                wire.Error(code="unauthenticated", message="log in first (register, login or resume)", ref=cmd.ref)
            )
        elif isinstance(cmd, wire.Ping):
            self._ops_for(session).append(wire.Pong(ref=cmd.ref))
        elif isinstance(cmd, wire.Logout):
            self._ops_for(session).append(wire.Bye(reason="logout"))
            self._close_after_flush(session, wire.CloseCode.LOGOUT, "logout")
        else:
            self.world.apply(session.player_id, cmd, tick)

    def _attach(self, item: Attach, tick: int) -> None:
        session, player = item.session, item.player
        pid = player.id
        if session not in self.sessions:
            # The connection went away while its login was loading.
            self.on_online(pid, False)
            return
        old = self.by_player.get(pid)
        stream: _Stream | None = None
        if item.resume is not None:
            live = self._streams.get(old) if old is not None and old is not session else None
            if live is not None:
                stream = live
                # The old connection says its bye on a copy; the stream goes on here.
                self._streams[old] = _Stream(live.seq)  # type: ignore[index]
            else:
                recent = self._recent.pop(pid, None)
                stream = recent[0] if recent is not None else None
            if stream is not None and not stream.covers(item.resume):
                stream = None
        if old is not None and old is not session:
            # One session per player: the old one gets what this tick made so
            # far, then bye (replaced) and close 4000.
            stale = self.world.outbox.pop(pid, [])
            stale.append(wire.Bye(reason="replaced"))
            self._session_ops.setdefault(old, []).extend(stale)
            self._close_after_flush(old, wire.CloseCode.REPLACED, "replaced")
            self.on_online(pid, False)  # the old session's hold on the player
        session.player_id = pid
        self.by_player[pid] = session
        pending = self._session_ops.pop(session, [])
        if stream is not None and item.resume is not None:
            # Resume: replay what the client missed, then go on with the same stream.
            self._streams[session] = stream
            for frame in stream.after(item.resume):
                session.send_frame(frame)
            session.seq = stream.seq
            self.world.ops_for(pid).extend(pending)
            self.world.join(player, tick, welcome=False)
            self.world.ops_for(pid).append(wire.Ack(ref=item.ref))
            return
        self._recent.pop(pid, None)
        self._streams[session] = _Stream()
        session.seq = 0
        if pending:
            self.world.ops_for(pid).extend(pending)
        self.world.join(player, tick, ref=item.ref, token=item.token)

    def _detach(self, session: Recipient) -> None:
        self.sessions.discard(session)
        self._session_ops.pop(session, None)
        stream = self._streams.pop(session, None)
        pid = session.player_id
        if pid is not None:
            if self.by_player.get(pid) is session:
                del self.by_player[pid]
                self.world.leave(pid)
                self.on_online(pid, False)
                if stream is not None:
                    # Kept a while so a dropped client can resume where it was.
                    self._recent[pid] = (stream, trio.current_time())
                    if len(self._recent) > RECENT_STREAMS:
                        self._recent.popitem(last=False)

    def _expire_streams(self) -> None:
        limit = trio.current_time() - RESUME_WINDOW
        recent = self._recent
        while recent:
            pid, (_, left_at) = next(iter(recent.items()))
            if left_at > limit:
                return
            del recent[pid]

    def _flush(self, tick: int) -> tuple[int, int]:
        frames = nbytes = 0
        op_counts = self.op_counts
        world_out = self.world.take_output()
        streams = self._streams
        for pid, ops in world_out.items():
            session = self.by_player.get(pid)
            if session is None or not ops:
                continue
            nbytes += self._send(session, streams.get(session), tick, ops)
            frames += 1
            _count_kinds(op_counts, ops)
        if self._session_ops:
            for session, ops in self._session_ops.items():
                if not ops:
                    continue
                nbytes += self._send(session, streams.get(session), tick, ops)
                frames += 1
                _count_kinds(op_counts, ops)
            self._session_ops.clear()
        if self._closing:
            for session, code, reason in self._closing:
                session.close(code, reason)
                self._detach(session)
            self._closing.clear()
            self._closing_set.clear()
        return frames, nbytes

    @staticmethod
    def _send(session: Recipient, stream: _Stream | None, tick: int, ops: list[wire.Op]) -> int:
        """Encode and hand over one frame: numbered in the session's stream
        (and kept for resume) once logged in, seq 0 before."""
        if stream is None:
            frame = wire.encode_frame(0, tick, ops)
        else:
            seq = stream.seq + 1
            frame = wire.encode_frame(seq, tick, ops)
            session.seq = stream.append(wire.compact(frame))
        session.send_frame(frame)
        return len(frame)

    def _shutdown(self) -> None:
        tick = self.tick + 1
        # Apply what already arrived so nothing a client was acked for is lost.
        for item in self.inbox.drain():
            self._handle(item, tick)
        for session in list(self.sessions):
            if session not in self._closing_set:
                self._ops_for(session).append(wire.Bye(reason="shutdown"))
                self._close_after_flush(session, wire.CloseCode.SHUTDOWN, "shutdown")
        self._flush(tick)
        changed = self.world.take_changed()
        if changed:
            self.mark_dirty(changed)
