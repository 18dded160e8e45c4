"""Reading a connection: the two ways, and what ends them.

On plain TCP one task reads every connection (:class:`~baolife.net.readhub.ReadHub`,
see there why): :class:`HubReader` is one connection's part of it, and the
connection's own task wakes only to run its login messages (they wait on
the store) and to end. Over TLS (and where there is no epoll) the
connection's task reads it itself with :func:`read_in_task`. Both hand each
whole message to :meth:`Intake.take <baolife.net.intake.Intake.take>` and run
the login it returns before they read on, so what a client sent behind a
login is handled after it; both end the same way at the end of the stream
(a clean close finishes the session, a lost connection aborts it). An
exception a message raises ends that connection alone.
"""

from __future__ import annotations

from typing import Any

import trio

from .. import protocol as wire
from .auth import Auth
from .intake import Intake
from .readhub import ReadHub
from .session import Session
from .ws import ConnectionDone

__all__ = ["HubReader", "read_in_task"]


async def read_in_task(session: Session, intake: Intake, auth: Auth) -> None:
    """Read ``session`` in the calling task until its stream ends (the
    connection's reader task where the hub cannot read it: TLS, no epoll)."""
    conn = session.conn
    while True:
        try:
            message = await conn.receive()
        except ConnectionDone as done:
            _ended(session, done)
            return
        login = intake.take(session, message)
        if login is not None:
            await auth.handle(session, session.remote, login)


class HubReader:
    """Reads one connection from a running :class:`ReadHub`.

    The hub calls :meth:`readable` in its own task; the connection's task
    waits in :meth:`serve` and wakes only to run a login message (reading
    stops meanwhile, so what follows it is handled after it, as in
    :func:`read_in_task`) and to end: at the end of the stream, or with the
    exception a message raised, which ends this connection alone. A line
    logged while reading runs in the hub's task, outside the context the
    listener binds in the connection's task: it names ``session`` and
    ``player``."""

    def __init__(self, session: Session, hub: ReadHub, fd: int, intake: Intake, auth: Auth) -> None:
        self.session = session
        self.hub = hub
        self.fd = fd
        self.intake = intake
        self.auth = auth
        self.login: wire.Command | None = None
        self.ended = False
        self.error: Exception | None = None
        # The connection's task while it waits in serve(), and a wake-up
        # that came while it did not: what a trio.Event would hold, without
        # an Event and its set of waiters for every connection (about 400
        # bytes each; docs/BENCHMARKS.md, issue 15).
        self._waiter: trio.lowlevel.Task | None = None
        self._woken = False
        self._abort = self._aborted  # bound once, not a closure per wait
        # One bound method for add and remove: the hub removes by identity.
        self._readable = self.readable

    async def serve(self) -> None:
        """Wait for logins to run and for the end; the descriptor is out of
        the hub when this returns (before the listener closes the stream).

        Raises:
            Exception: what reading or taking a message raised.
        """
        self.hub.add(self.fd, self._readable)
        try:
            while True:
                await self._sleep()
                if self.error is not None:
                    raise self.error
                if self.login is not None:
                    cmd, self.login = self.login, None
                    await self.auth.handle(self.session, self.session.remote, cmd)
                    self.hub.add(self.fd, self._readable)
                    self._drain()  # what arrived behind the login
                    continue
                if self.ended:
                    return
        finally:
            self.hub.remove(self.fd, self._readable)

    async def _sleep(self) -> None:
        """Wait for :meth:`_wake` (at once if it came since the last wait)."""
        if self._woken:
            self._woken = False
            await trio.lowlevel.checkpoint()
            return
        self._waiter = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort)

    def _aborted(self, _: Any) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _wake(self) -> None:
        task, self._waiter = self._waiter, None
        if task is None:
            self._woken = True
        else:
            trio.lowlevel.reschedule(task)

    def readable(self) -> None:
        """The hub's callback: read what the socket holds and take the whole
        messages in it. Never blocks."""
        session = self.session
        if session.state == "dead" or self.ended:
            self.hub.remove(self.fd, self._readable)  # its task is being cancelled
            return
        try:
            if session.conn.read_nowait():
                self._drain()
        except Exception as exc:  # one connection's fault ends that connection
            self.error = exc
            self._stop()

    def _drain(self) -> None:
        session = self.session
        conn = session.conn
        while self.login is None and not self.ended:
            try:
                message = conn.next_message()
            except ConnectionDone as done:
                _ended(session, done)
                self._stop()
                return
            if message is None:
                return
            login = self.intake.take(session, message)
            if login is not None:
                self.login = login
                self.hub.remove(self.fd, self._readable)  # read on once it is done
                self._wake()

    def _stop(self) -> None:
        self.ended = True
        self.hub.remove(self.fd, self._readable)
        self._wake()


def _ended(session: Session, done: ConnectionDone) -> None:
    if session.close_code is None:
        session.close_code = done.code
    if done.code == wire.CloseCode.LOST:
        session.abort("lost: connection lost")
    else:
        session.finish()
