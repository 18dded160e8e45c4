"""The sweeper: deadlines and dead peers, for every connection at once.

One task, one pass a second over every open connection (a few hundred ns
each, with the deadlines turned into times once per pass). A pass:

- closes a connection that has not logged in within ``login_timeout``
  (1008);
- says ``bye`` idle and closes (4001) a logged-in connection from which no
  message came for ``idle_timeout`` (through the tick loop, so the bye comes
  after the frames of the tick);
- pings a connection silent for ``ping_interval`` and drops it (``no_pong``)
  if the pong has not come back within as long again. Any frame read counts
  as a sign of life, a pong included.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio

from .. import protocol as wire
from ..config import Settings
from ..tick.loop import Inbox, Kick
from .session import Session

__all__ = ["SWEEP_EVERY", "sweep", "sweep_forever"]

SWEEP_EVERY = 1.0


async def sweep_forever(sessions: Iterable[Session], settings: Settings, inbox: Inbox) -> None:
    """:func:`sweep` ``sessions`` every :data:`SWEEP_EVERY` seconds, until
    cancelled. ``sessions`` is read afresh at every pass (the listener's live set)."""
    while True:
        await trio.sleep(SWEEP_EVERY)
        sweep(list(sessions), trio.current_time(), settings, inbox)


def sweep(sessions: Iterable[Session], now: float, settings: Settings, inbox: Inbox) -> None:
    """One pass over ``sessions`` at time ``now``; see the module docstring."""
    login_before = now - settings.login_timeout
    idle_before = now - settings.idle_timeout
    quiet_before = now - settings.ping_interval
    for session in sessions:
        if session.state != "open":
            continue
        conn = session.conn
        if conn.last_pong > session.last_rx:
            session.last_rx = conn.last_pong
        if session.player_id is None:
            if session.connected_at < login_before:
                session.close(wire.CloseCode.POLICY, "log in within the time limit")
                continue
        elif session.last_message < idle_before and not session.kicked:
            session.kicked = True
            inbox.put(Kick(session, "idle", wire.CloseCode.IDLE), force=True)
            continue
        ping_sent = session.ping_sent
        if ping_sent is not None:
            if conn.last_pong >= ping_sent:
                session.ping_sent = None
            elif ping_sent < quiet_before:
                session.abort("no_pong: no answer to ping")
        elif session.last_rx < quiet_before:
            session.ping_sent = now
            session.send_control(conn.ping_frame())
