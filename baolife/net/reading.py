"""Serving a connection after its handshake: the two ways, and what ends them.

On plain TCP one task reads every connection (:class:`~baolife.net.readhub.ReadHub`,
see there why), and a connection has no task of its own
(:class:`HubConnection`): a task runs only while it has something to wait
for (a login, the writer, the end). Over TLS (and where there is no epoll)
the connection's own task reads it with :func:`read_in_task`. Both hand each
whole message to :meth:`Intake.take <baolife.net.intake.Intake.take>` and run
the login it returns before they read on, so what a client sent behind a
login is handled after it; both end the same way at the end of the stream
(a clean close finishes the session, a lost connection aborts it). An
exception a message raises ends that connection alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
import trio

from .. import protocol as wire
from ..logs import Deferred
from .auth import Auth
from .intake import Intake
from .readhub import ReadHub
from .session import CLOSE_WAIT, Session
from .ws import ConnectionDone

__all__ = ["HubConnection", "bind_log_context", "read_in_task"]

log = structlog.get_logger("baolife.net")


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


class HubConnection:
    """A plain-TCP connection after its handshake, served without a task of
    its own: what a parked task, its frames, nursery and cancel scopes held
    for every connection's life (about 4.5 KB of each; docs/BENCHMARKS.md,
    issue 15) is a few fields here. Tasks of the listener's nursery do the
    waiting, each only while there is some to do:

    * the hub calls :meth:`readable` in its own task, which hands each whole
      message to the intake;
    * a login message starts a task that runs it (it waits on the store);
      reading stops meanwhile, so what follows it is handled after it, as in
      :func:`read_in_task`;
    * the session's writer, while frames wait (:meth:`start_writer`);
    * the end (:meth:`end`: the stream's end, an abort, the close done, a
      fault) starts the task that cancels a login under way, waits briefly
      for the writer to send what is queued (a close reply, a bye), cancels
      it, and once both have stopped hands the connection to ``finish``
      (the listener's bookkeeping, then closing the stream).

    An exception a message, a login or the writer raises is logged and ends
    this connection alone, as failed. Lines logged in these tasks name
    ``session`` and ``player``."""

    __slots__ = (
        "session",
        "hub",
        "fd",
        "intake",
        "auth",
        "nursery",
        "finish",
        "ending",
        "cut",
        "failed",
        "_busy",
        "_login_scope",
        "_quiet",
        "_readable",
    )

    def __init__(
        self,
        session: Session,
        hub: ReadHub,
        fd: int,
        intake: Intake,
        auth: Auth,
        nursery: trio.Nursery,
        finish: Callable[[HubConnection], Awaitable[None]],
    ) -> None:
        self.session = session
        self.hub = hub
        self.fd = fd
        self.intake = intake
        self.auth = auth
        self.nursery = nursery
        self.finish = finish
        self.ending = False
        self.cut = False  # past the end's grace: a task not yet run does nothing
        self.failed = False
        # Tasks of this connection running (a login, the writer), and the
        # scope of the login's; what the end waits for.
        self._busy = 0
        self._login_scope: trio.CancelScope | None = None
        self._quiet: trio.Event | None = None
        # One bound method for add and remove: the hub removes by identity.
        self._readable = self.readable

    def start(self) -> None:
        """Start reading and writing (the stream is this object's from now)."""
        self.hub.add(self.fd, self._readable)
        self.session.start_hosted(self)

    # ----------------------------------------------------------------- reading (the hub's task)

    def readable(self) -> None:
        """The hub's callback: read what the socket holds and take the whole
        messages in it. Never blocks."""
        if self.ending:
            self.hub.remove(self.fd, self._readable)
            return
        try:
            if self.session.conn.read_nowait():
                self._drain()
        except Exception:  # one connection's fault ends that connection
            self._fail("a message failed")

    def _drain(self) -> None:
        session = self.session
        conn = session.conn
        while not self.ending:
            try:
                message = conn.next_message()
            except ConnectionDone as done:
                _ended(session, done)
                self.end()
                return
            if message is None:
                return
            login = self.intake.take(session, message)
            if login is not None:
                self.hub.remove(self.fd, self._readable)  # read on once it is done
                self._busy += 1
                self.nursery.start_soon(self._login, login)
                return

    def _fail(self, what: str) -> None:
        """Log the exception being handled and end the connection as failed."""
        session = self.session
        log.exception("connection_failed", session=session.id, player=session.player_id, remote=session.remote)
        self.failed = True
        session.abort(f"internal: {what}")
        self.end()

    # ----------------------------------------------------------------- its tasks

    async def _login(self, cmd: wire.Command) -> None:
        bind_log_context(self.session)
        try:
            with trio.CancelScope() as self._login_scope:
                if not self.ending:
                    await self.auth.handle(self.session, self.session.remote, cmd)
            if not self.ending:
                self.hub.add(self.fd, self._readable)
                self._drain()  # what arrived behind the login
        except Exception:
            self._fail("a login failed")
        finally:
            self._login_scope = None
            self._exited()

    def start_writer(self) -> None:
        """:class:`~baolife.net.session.Host`: run the session's writer."""
        self._busy += 1
        self.nursery.start_soon(self._write)

    async def _write(self) -> None:
        ended = True
        try:
            if not self.cut:
                ended = await self.session.write_hosted()
        except Exception:
            self._fail("writing failed")
        finally:
            self._exited()
            if ended:
                self.end()  # the connection ends with its writer

    def _exited(self) -> None:
        self._busy -= 1
        if not self._busy and self._quiet is not None:
            self._quiet.set()

    def end(self) -> None:
        """:class:`~baolife.net.session.Host`: end the connection (idempotent)."""
        if self.ending:
            return
        self.ending = True
        self.hub.remove(self.fd, self._readable)
        self.nursery.start_soon(self._end)

    async def _end(self) -> None:
        session = self.session
        bind_log_context(session)
        if self._login_scope is not None:
            self._login_scope.cancel()  # its answer has nowhere to go
        try:
            if self._busy:
                # Let the writer send what is queued (a close reply, a bye), briefly.
                with trio.move_on_after(CLOSE_WAIT):
                    await self._wait_quiet()
        finally:
            self.cut = True
            if session.cancel_scope is not None:
                session.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await self._wait_quiet()  # cancelled: they end at their next checkpoint
                session.stop_writing()
                await self.finish(self)

    async def _wait_quiet(self) -> None:
        while self._busy:
            self._quiet = trio.Event()
            await self._quiet.wait()
        self._quiet = None


def bind_log_context(session: Session) -> Mapping[str, Any]:
    """Name the connection in the lines the calling task logs: ``session``,
    and ``player``, whoever it is logged in as when a line is written. Bound
    by hand: bound_contextvars' generator would be held as long as the
    connection (about 400 bytes of each). Returns the tokens to reset with
    (a task that ends soon need not: its context is its own copy)."""
    return structlog.contextvars.bind_contextvars(session=session.id, player=Deferred(lambda: session.player_id))


def _ended(session: Session, done: ConnectionDone) -> None:
    if session.close_code is None:
        session.close_code = done.code
    if done.code == wire.CloseCode.LOST:
        session.abort("lost: connection lost")
    else:
        session.finish()
