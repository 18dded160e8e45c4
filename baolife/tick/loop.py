"""The tick loop: the clock, and the one task that changes game state.

Connections, AI workers and the saver never touch the :class:`World`: they
put items into the :class:`Inbox` (a synchronous, bounded deque). Each tick
the loop takes the time once and drives the two sans-IO cores with it: it
applies the items in arrival order (game commands to the engine, the rest to
the delivery core, :mod:`baolife.tick.delivery`), advances the players whose
day boundary it is, then has the delivery core build at most one frame per
connection and hand it over without waiting (:class:`Recipient.send_frame`).
Sessions, streams, the outbox and frames are the delivery core's; the loop
keeps the clock and the wiring between inbox, engine and delivery.

The loop is drift-free (``deadline += period``) and counts overruns; when it
falls more than a few periods behind it skips ahead rather than bursting.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import trio

from .. import protocol as wire
from ..model import Player
from .delivery import REPLAY_FRAMES, Delivery, Recipient
from .engine import World

__all__ = [
    "REPLAY_FRAMES",
    "Attach",
    "Broadcast",
    "Deliver",
    "Detach",
    "Inbox",
    "Kick",
    "NpcReply",
    "Recipient",
    "TickLoop",
]


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


@attrs.frozen
class Detach:
    """A connection ended (closed, aborted, or dropped)."""

    session: Recipient


@attrs.frozen
class Kick:
    """Close a connection with ``bye`` ``reason`` (and ``message``, text for
    the player, e.g. an operator's) then ``code``."""

    session: Recipient
    reason: str
    code: int
    message: str | None = None


def _op_tuple(ops: Iterable[wire.Op]) -> tuple[wire.Op, ...]:
    return tuple(ops)


@attrs.frozen
class Broadcast:
    """Ops for every logged-in player, in this tick's frame (an operator's
    notice); a session already saying its ``bye`` gets none."""

    ops: tuple[wire.Op, ...] = attrs.field(converter=_op_tuple)


@attrs.frozen
class NpcReply:
    player: int
    life: int
    npc: int
    ref: Any
    text: str


InboxItem = Deliver | Attach | Detach | Kick | NpcReply | Broadcast


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
    """Drives the world and the delivery core at ``tick_hz``; see the module
    docstring.

    ``on_tick(tick, seconds, late, frames, frame_bytes)`` is called after every
    tick (``late``: how long after its deadline the tick started)
    (metrics, watchdog); ``mark_dirty(pids)`` receives the players changed by
    the tick, ``mark_progressed(pids)`` those whose steps moved only their
    progress (``World.take_progressed``; default: ``mark_dirty``);
    ``on_online(pid, online)`` tracks presence for the directory (called
    once the world has let go of a player who left); ``welcome(pid)`` gives
    ops sent right after the snapshot (after the ``ack`` of a resume that
    replays) at every attach.
    """

    def __init__(
        self,
        world: World,
        inbox: Inbox,
        *,
        tick_hz: float,
        mark_dirty: Callable[[set[int]], None],
        mark_progressed: Callable[[set[int]], None] | None = None,
        on_online: Callable[[int, bool], None] = lambda pid, online: None,
        on_tick: Callable[[int, float, float, int, int], None] = lambda *a: None,
        welcome: Callable[[int], list[wire.Op]] | None = None,
    ) -> None:
        self.world = world
        self.inbox = inbox
        # The world's outbox is where its game ops go; the delivery core is
        # the one that adds the connections' ops to it and takes them out.
        self.delivery = Delivery(world.outbox, welcome=welcome)
        self.period = 1.0 / tick_hz
        self.mark_dirty = mark_dirty
        self.mark_progressed = mark_progressed or mark_dirty
        self.on_online = on_online
        self.on_tick = on_tick
        self.tick = 0
        self.overruns = 0
        self.last_tick_seconds = 0.0
        self._late = 0.0
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self._goodbye_at_stop = True
        self.advanced = trio.Event()
        # Reads what connections sent while the tick ran, putting it in the
        # inbox (the listener's read hub; see step); returns how many were ready.
        self.read_now: Callable[[], int] | None = None

    # ----------------------------------------------------------------- views

    @property
    def sessions(self) -> set[Recipient]:
        """Every connection, logged in or not."""
        return self.delivery.sessions

    @property
    def by_player(self) -> dict[int, Recipient]:
        """The connection holding each online player."""
        return self.delivery.by_player

    @property
    def error_counts(self) -> Counter[str]:
        """Errors sent, by code."""
        return self.delivery.error_counts

    @property
    def op_counts(self) -> dict[str, int]:
        """Ops sent, by kind."""
        return self.delivery.op_counts

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
        self.delivery.add(session)

    # ----------------------------------------------------------------- the clock

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick until :meth:`stop`; then say ``bye`` (shutdown) to every
        connection and close it with 1001, at a tick boundary (unless the
        stop asked for :meth:`goodbye` later)."""
        deadline = trio.current_time()
        task_status.started()
        try:
            while not self._stop.is_set():
                self.tick += 1
                now = trio.current_time()
                self._late = max(0.0, now - deadline)
                self.step(self.tick, now)
                deadline += self.period
                now = trio.current_time()
                if now > deadline:
                    self.overruns += 1
                    if now - deadline > 5 * self.period:
                        deadline = now  # far behind: skip ahead instead of bursting
                with trio.move_on_at(deadline):
                    await self._stop.wait()
            self._shutdown(trio.current_time())
        finally:
            self._stopped.set()

    async def stop(self, *, goodbye: bool = True) -> None:
        """Stop at the next tick boundary and wait until what had arrived is
        applied and, with ``goodbye``, the goodbyes are queued. Without, the
        connections stay open, their players frozen, until :meth:`goodbye`
        (a drain saves everyone first, so that the players it sends away
        find themselves free wherever they land)."""
        self._goodbye_at_stop = goodbye
        self._stop.set()
        await self._stopped.wait()

    def goodbye(self) -> None:
        """After ``stop(goodbye=False)``: ``bye`` (shutdown) and close 1001
        to every connection now. What arrived since the stop is dropped:
        it was never acknowledged, and the players are saved already."""
        self.inbox.drain()
        self._say_goodbye(trio.current_time())

    # ----------------------------------------------------------------- one tick

    def step(self, tick: int, now: float) -> None:
        """One whole tick at time ``now``: commands, days, frames, dirty
        marks. Never awaits."""
        started = time.perf_counter()
        world = self.world
        delivery = self.delivery
        self._handle_inbox(tick, now)
        world.advance(tick)
        read_now = self.read_now
        if read_now is not None and read_now():
            self._handle_inbox(tick, now)  # what arrived while this tick ran goes out in its frames
        frames, nbytes = delivery.flush(tick)
        for pid in delivery.close_said_bye(now):
            self._leave(pid)
        if tick % 64 == 0:
            delivery.expire(now)
        self._mark(world)
        self.last_tick_seconds = time.perf_counter() - started
        self.on_tick(tick, self.last_tick_seconds, self._late, frames, nbytes)
        if not self.advanced.is_set():
            self.advanced.set()

    def _handle_inbox(self, tick: int, now: float) -> None:
        """Everything in the inbox, in arrival order."""
        for item in self.inbox.drain():
            self._handle(item, tick, now)

    def _handle(self, item: InboxItem, tick: int, now: float) -> None:
        delivery = self.delivery
        if isinstance(item, Deliver):
            cmd = item.command
            if isinstance(cmd, wire.Error):
                delivery.reject(item.session, cmd)
            else:
                pid = delivery.admit(item.session, cmd)
                if pid is not None:
                    self.world.apply(pid, cmd, tick)
        elif isinstance(item, NpcReply):
            self.world.npc_reply(item.player, item.life, item.npc, item.ref, item.text)
        elif isinstance(item, Attach):
            self._attach(item, tick)
        elif isinstance(item, Detach):
            pid = delivery.detach(item.session, now)
            if pid is not None:
                self._leave(pid)
        elif isinstance(item, Kick):
            delivery.kick(item.session, item.reason, item.code, item.message)
        elif isinstance(item, Broadcast):
            delivery.broadcast(item.ops)

    def _attach(self, item: Attach, tick: int) -> None:
        player = item.player
        pid = player.id
        attached = self.delivery.attach(item.session, pid, item.resume)
        if attached.released:
            # The login's hold on the player (the connection went away while
            # it was loading), or the replaced connection's.
            self.on_online(pid, False)
        if attached.gone:
            return
        if attached.resumed:
            self.world.join(player, tick, welcome=False)
        else:
            self.world.join(player, tick, ref=item.ref, token=item.token)
        self.delivery.joined(pid, attached, item.ref)

    def _leave(self, pid: int) -> None:
        # The world first: presence (on_online) asks whether the player is
        # still in it (gone for good, or replaced by a newer connection).
        self.world.leave(pid)
        self.on_online(pid, False)

    def _shutdown(self, now: float) -> None:
        tick = self.tick + 1
        # Apply what already arrived so nothing a client was acked for is lost.
        self._handle_inbox(tick, now)
        if self._goodbye_at_stop:
            self._say_goodbye(now)
        self._mark(self.world)

    def _say_goodbye(self, now: float) -> None:
        self.delivery.goodbye("shutdown", wire.CloseCode.SHUTDOWN)
        self.delivery.flush(self.tick + 1)
        for pid in self.delivery.close_said_bye(now):
            self._leave(pid)

    def _mark(self, world: World) -> None:
        """Hand the players this tick changed to the saver's bookkeeping."""
        changed = world.take_changed()
        if changed:
            self.mark_dirty(changed)
        progressed = world.take_progressed()
        if progressed:
            self.mark_progressed(progressed)
