"""Message intake: what happens to one message read from a connection.

Both ways of reading (:mod:`baolife.net.reading`) hand every whole message
to :meth:`Intake.take`, which, in order:

1. drops it if the connection is closing (it is read only to see the peer's
   close);
2. applies the connection's rate limit: a dropped message is answered
   ``rate_limited`` (it is not parsed, so the error has no ``ref``), and
   ``rate_strikes`` drops in a row close the connection with 1008;
3. parses it (:func:`baolife.protocol.parse`), answering a rejected one with
   its ``error``;
4. routes it: on a connection not logged in, a command that logs in (one
   that does not need login, see :attr:`baolife.protocol.Command.needs_login`)
   is returned to the reader, which runs it (it waits on the store) before
   it reads on. Everything else goes into the tick loop's inbox (``busy``
   when the inbox is full), where the loop alone decides what the
   connection may send as it is (``unauthenticated`` before login,
   ``not_allowed`` for a second login).

Answers go through the inbox too (forced past its bound: they are bounded
by the connections that earn them), so they reach the client in order with
the frames of the tick.
"""

from __future__ import annotations

from collections import Counter

import structlog
import trio

from .. import protocol as wire
from ..tick.loop import Deliver, Inbox
from .session import Session

__all__ = ["Intake"]

log = structlog.get_logger("baolife.net")


class Intake:
    """Takes the messages of every connection of a listener; see the module
    docstring. ``inbound`` counts messages by command type, plus
    ``invalid`` (rejected by the parser) and ``rate_limited`` (dropped)."""

    def __init__(self, inbox: Inbox, *, rate_strikes: int) -> None:
        self.inbox = inbox
        self.rate_strikes = rate_strikes
        self.inbound: Counter[str] = Counter()

    def take(self, session: Session, message: str | bytes) -> wire.Command | None:
        """Answer or queue one message read from ``session``.

        Returns the command when it logs in (``register``, ``login``,
        ``resume`` on a connection not logged in): the caller runs it with :meth:`baolife.net.auth.Auth.handle`
        and handles nothing read after it until it is done. Returns None
        for everything else (queued or answered here). Never blocks; may run
        outside the connection's task (in the read hub's), so it names the
        session in what it logs.
        """
        session.last_rx = trio.current_time()
        if session.state != "open":
            return None
        if not session.allow_message():
            self._over_rate(session)
            return None
        try:
            cmd = wire.parse(message)
        except wire.Rejected as rejected:
            self.inbound["invalid"] += 1
            self._answer(session, rejected.op)
            return None
        self.inbound[cmd.type] += 1
        if not cmd.needs_login and session.player_id is None:
            return cmd
        if not self.inbox.put(Deliver(session, cmd)):
            self._answer(
                session, wire.Error(code="busy", message="the server is overloaded; try again in a moment", ref=cmd.ref)
            )
        return None

    def _over_rate(self, session: Session) -> None:
        if session.strikes >= self.rate_strikes:
            log.warning(
                "rate_limit_abuse",
                remote=session.remote,
                strikes=session.strikes,
                session=session.id,
                player=session.player_id,
            )
            session.close(wire.CloseCode.POLICY, "rate limit exceeded")
            return
        self.inbound["rate_limited"] += 1
        self._answer(session, wire.Error(code="rate_limited", message="too many messages; this one was dropped"))

    def _answer(self, session: Session, error: wire.Error) -> None:
        self.inbox.put(Deliver(session, error), force=True)
