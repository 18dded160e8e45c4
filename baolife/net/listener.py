"""The WebSocket listener: accepting, admitting and ending connections.

It accepts on ``settings.ws_bind`` (:func:`~baolife.net.accept.accept_loop`
bounds the streams held open), runs the handshake under a deadline, and
admits a connection or refuses it with an HTTP status: 404 for a path other
than ``/ws``, 503 while full or draining, 429 over the per-address limit
(the address a front proxy forwarded, :mod:`baolife.net.proxy`). An admitted
connection gets a :class:`~baolife.net.session.Session` (with a writer task
while frames wait in its outbound queue), and is read (:mod:`baolife.net.reading`)
by the read hub without a task of its own (plain TCP) or by its handshake's
task (TLS), which hand its messages to the :class:`~baolife.net.intake.Intake`; one sweeper
task watches the deadlines of all (:mod:`baolife.net.sweeper`). When a
connection ends, the listener counts why, tells the tick loop (``Detach``)
and closes the stream gracefully. An exception in one connection is logged
and ends that connection only.
"""

from __future__ import annotations

import select
import ssl
from collections import Counter
from functools import partial
from typing import Any

import attrs
import structlog
import trio

from ..cluster.proxycheck import ProxyCheck
from ..config import Settings
from ..protocol import CloseCode
from ..tick.loop import Detach, Inbox, TickLoop
from .accept import HANDSHAKE_ROOM, Gate, accept_loop, http_refusal
from .auth import Auth
from .intake import Intake
from .proxy import client_address
from .readhub import ReadHub
from .reading import HubConnection, bind_log_context, read_in_task
from .session import CLOSE_WAIT, Session
from .sweeper import sweep_forever
from .ws import WsConnection

__all__ = ["WsListener", "ListenerStatistics"]

log = structlog.get_logger("baolife.net")

HANDSHAKE_TIMEOUT = 5.0
# The ``reason`` label of closed connections, by close code.
_CLOSE_REASONS: dict[int, str] = {
    CloseCode.LOGOUT: "closed",
    CloseCode.SHUTDOWN: "shutdown",
    CloseCode.PROTOCOL_ERROR: "protocol",
    CloseCode.LOST: "lost",
    CloseCode.BAD_UTF8: "bad_utf8",
    CloseCode.POLICY: "policy",
    CloseCode.TOO_BIG: "too_big",
    CloseCode.INTERNAL: "internal",
    CloseCode.REPLACED: "replaced",
    CloseCode.IDLE: "idle",
}


# The answer at accept when the listener holds as many streams as it may.
FULL = http_refusal(503, "Service Unavailable", "server is full; try again later\n")


@attrs.frozen
class ListenerStatistics:
    """Counters of :meth:`WsListener.statistics`: connections open and
    accepted, refusals and closes by reason, inbound messages by type (see
    :class:`~baolife.net.intake.Intake`), and the outbound queues."""

    connections: int
    accepted: int
    refused: dict[str, int]
    closed: dict[str, int]
    inbound: dict[str, int]
    queued_frames: int
    queued_bytes: int
    max_queued_frames: int
    accept_errors: int = 0


async def _linger(stream: trio.abc.Stream) -> None:
    """Close gracefully: send FIN after everything written, then read and drop
    what the peer still sends, briefly. Closing a socket with unread input
    makes the kernel send RST, and an RST can make the peer discard our last
    frames (a bye, the close frame) before it reads them."""
    with trio.move_on_after(CLOSE_WAIT):
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):
                await stream.send_eof()
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            return


def _peer(stream: trio.abc.Stream) -> str:
    inner = getattr(stream, "transport_stream", stream)
    sock = getattr(inner, "socket", None)
    try:
        return str(sock.getpeername()[0]) if sock is not None else "?"
    except OSError:
        return "?"


class WsListener:
    """Serves ``/ws`` on ``settings.ws_bind``; see the module docstring."""

    def __init__(self, settings: Settings, loop: TickLoop, inbox: Inbox, auth: Auth) -> None:
        self.settings = settings
        self.loop = loop
        self.inbox = inbox
        self.auth = auth
        self.sessions: set[Session] = set()
        self.per_ip: Counter[str] = Counter()
        self.port: int | None = None
        self.draining = False
        self.accepted = 0
        self.refused: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self.intake = Intake(inbox, rate_strikes=settings.rate_strikes)
        self._accept_scope = trio.CancelScope()
        self._conns: trio.Nursery | None = None
        self._changed = trio.Event()
        self.hub = ReadHub() if hasattr(select, "epoll") else None
        # Streams held open, handshakes included: past it a connection is
        # answered 503 at accept, before the process runs out of descriptors.
        self.gate = Gate(settings.max_connections + HANDSHAKE_ROOM)
        self._admitting = 0
        self.proxy_check: ProxyCheck | None = None

    def statistics(self) -> ListenerStatistics:
        """The listener's counters now (read by the metrics collector)."""
        frames = [s.queued_frames for s in self.sessions]
        return ListenerStatistics(
            connections=len(self.sessions),
            accepted=self.accepted,
            refused=dict(self.refused) | ({"capacity": self.gate.refused} if self.gate.refused else {}),
            closed=dict(self.closed),
            inbound=dict(self.intake.inbound),
            queued_frames=sum(frames),
            queued_bytes=sum(s.queued_bytes for s in self.sessions),
            max_queued_frames=max(frames, default=0),
            accept_errors=self.gate.accept_errors,
        )

    async def _open(self) -> list[trio.SocketListener] | list[trio.SSLListener[trio.SocketStream]]:
        host, port = self.settings.ws_bind
        if self.settings.tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
            return await trio.open_ssl_over_tcp_listeners(port, ctx, host=host)
        return await trio.open_tcp_listeners(port, host=host)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept until :meth:`stop_accepting`, then serve the open connections
        until they end (or :meth:`drain` gives up on them)."""
        listeners: list[Any] = await self._open()
        first: Any = listeners[0]
        sock = getattr(first, "transport_listener", first).socket
        self.port = sock.getsockname()[1]
        async with trio.open_nursery() as reading:
            if self.hub is not None:
                await reading.start(self.hub.run)
                self.loop.read_now = self.hub.read_now
            try:
                async with trio.open_nursery() as conns:
                    self._conns = conns
                    with self._accept_scope:
                        async with trio.open_nursery() as accept:
                            accept.start_soon(sweep_forever, self.sessions, self.settings, self.inbox)
                            # Plain TCP gets an HTTP 503 over the bound; TLS is just closed.
                            refusal = b"" if self.settings.tls_cert else FULL
                            for listener in listeners:
                                loop = partial(accept_loop, listener, self._handle, conns, self.gate, refusal=refusal)
                                await accept.start(partial(loop, name="ws"))
                            task_status.started(self.port)
                    # Hosted connections have no task here to wait for.
                    await self.wait_connections(0)
            finally:
                self._conns = None
                self._cut_hosted()  # left only when this task was cancelled from outside
            reading.cancel_scope.cancel()  # every connection has ended
        log.info("ws_listener_stopped")

    async def wait_connections(self, at_most: int) -> None:
        """Return once at most ``at_most`` connections are open."""
        while len(self.sessions) > at_most:
            if self._changed.is_set():  # one Event for every waiter (run and drain wait at once)
                self._changed = trio.Event()
            await self._changed.wait()

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections go on."""
        self.draining = True
        self._accept_scope.cancel()

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for every connection to end, then cut the
        rest. Returns how many had to be cut."""
        with trio.move_on_after(grace):
            await self.wait_connections(0)
        left = len(self.sessions)
        for session in list(self.sessions):
            session.abort("shutdown: cut at the end of the drain")  # a hosted one ends in a task of conns
        if self._conns is not None:
            self._conns.cancel_scope.cancel()
        return left

    # ----------------------------------------------------------------- one connection

    async def _handle(self, stream: trio.abc.Stream) -> None:
        remote = _peer(stream)
        session: Session | None = None
        failed = hosted = False
        try:
            conn = WsConnection(stream, max_message_bytes=self.settings.max_message_bytes)
            with trio.move_on_after(HANDSHAKE_TIMEOUT):
                session = await self._handshake(conn, remote)
            if session is None:
                return
            hosted = self._host(session)
            if hosted:
                return  # the stream is the hub connection's now
            await self._serve(session)
        except Exception:  # one connection's fault must not stop the listener
            failed = True
            log.exception(
                "connection_failed",
                session=session.id if session else None,
                remote=session.remote if session else remote,
            )
        finally:
            if not hosted:
                await self._close(stream, session, failed)

    async def _close(self, stream: trio.abc.Stream, session: Session | None, failed: bool) -> None:
        """Forget ``session`` (if the connection got one), then close
        ``stream``: gracefully while the session is alive and did not fail."""
        if session is not None:
            self._forget(session, failed)
        with trio.CancelScope(shield=True):
            if session is not None and session.state != "dead" and not failed:
                await _linger(stream)
            await trio.aclose_forcefully(stream)

    def _host(self, session: Session) -> bool:
        """Serve ``session`` from the read hub without a task of its own
        (:class:`~baolife.net.reading.HubConnection`), where it can: plain
        TCP, epoll. False where the calling task must serve it."""
        fd = session.conn.fd
        if self.hub is None or not self.hub.running or fd is None or self._conns is None:
            return False
        HubConnection(session, self.hub, fd, self.intake, self.auth, self._conns, self._finish_hosted).start()
        # The stream stays open past the handler's return: counted until
        # _finish_hosted (accept_loop stops counting it when the handler returns).
        self.gate.open += 1
        return True

    def _cut_hosted(self) -> None:
        """Forget and close, without waiting, every connection still open
        once the connections' nursery is gone (the listener cancelled from
        outside, not drained): only hosted ones can be, having no task."""
        for session in list(self.sessions):
            self._forget(session, failed=False)
            session.stop_writing()
            fd = session.conn.fd
            if self.hub is not None and fd is not None:
                self.hub.remove(fd)
            sock = getattr(session.conn.stream, "socket", None)
            if sock is not None:
                sock.close()
            self.gate.open -= 1

    async def _finish_hosted(self, hosted: HubConnection) -> None:
        """The end of a hosted connection (its tasks are done): closed as
        :meth:`_handle` closes a connection it served."""
        try:
            await self._close(hosted.session.conn.stream, hosted.session, hosted.failed)
        finally:
            self.gate.open -= 1

    async def _handshake(self, conn: WsConnection, remote: str) -> Session | None:
        """The handshake, then :meth:`_admit`. The request is not kept (its
        headers would live as long as the connection in the caller's frame)."""
        request = await conn.handshake()
        if request is None:
            return None
        if self.proxy_check is not None:  # what the proxy says of itself (baolife.cluster)
            self.proxy_check.handshake(remote, request.extra_headers)
        remote = client_address(remote, request.extra_headers, self.settings.trusted_proxies)
        return await self._admit(conn, request.target, remote)

    async def _admit(self, conn: WsConnection, target: str, remote: str) -> Session | None:
        s = self.settings
        path = target.split("?", 1)[0]
        if path != "/ws":
            self.refused["path"] += 1
            await conn.reject(404, b"not found: the WebSocket endpoint is /ws\n")
            return None
        if self.draining:
            self.refused["draining"] += 1
            await conn.reject(503, b"server is shutting down; reconnect shortly\n")
            return None
        if len(self.sessions) + self._admitting >= s.max_connections:
            self.refused["max_connections"] += 1
            await conn.reject(503, b"server is full; try again later\n")
            return None
        if self.per_ip[remote] >= s.conn_per_ip:
            self.refused["per_ip"] += 1
            await conn.reject(429, b"too many connections from your address\n")
            return None
        # Both limits count this connection from here: the accept below
        # waits, and other handshakes pass these checks meanwhile.
        self._admitting += 1
        self.per_ip[remote] += 1
        try:
            await conn.accept()
        except BaseException:
            self.per_ip[remote] -= 1
            if not self.per_ip[remote]:
                del self.per_ip[remote]
            raise
        finally:
            self._admitting -= 1
        session = Session(
            conn, remote, max_frames=s.outbound_frames, max_bytes=s.outbound_bytes, rate=s.msg_rate, burst=s.msg_burst
        )
        self.sessions.add(session)
        self.accepted += 1
        self.loop.add_session(session)
        return session

    def _forget(self, session: Session, failed: bool) -> None:
        # Before the stream closes: its descriptor number may be reused at once.
        session.release_socket()
        self.sessions.discard(session)
        self.per_ip[session.remote] -= 1
        if self.per_ip[session.remote] <= 0:
            del self.per_ip[session.remote]
        if failed:
            reason = "internal"
        elif session.abort_reason:
            reason = session.abort_reason.split(":")[0]
        else:
            reason = _CLOSE_REASONS.get(session.close_code or CloseCode.LOST, f"code_{session.close_code}")
        self.closed[reason] += 1
        self.inbox.put(Detach(session))
        log.info(
            "connection_closed",
            session=session.id,
            player=session.player_id,
            reason=reason,
            code=session.close_code,
            messages=session.messages,
            frames=session.frames_sent,
            bytes=session.bytes_sent,
            seconds=round(trio.current_time() - session.connected_at, 1),
        )
        self._changed.set()

    async def _serve(self, session: Session) -> None:
        """Serve a connection the hub cannot host in the calling task (TLS, no epoll)."""
        tokens = bind_log_context(session)
        try:
            async with trio.open_nursery() as nursery:
                session.start_writing(nursery)  # a writer task whenever frames wait
                await read_in_task(session, self.intake, self.auth)
                # Let the writer send what is queued (a close reply, a bye), briefly.
                scope = nursery.cancel_scope
                scope.deadline = min(scope.deadline, trio.current_time() + CLOSE_WAIT)
        finally:
            session.stop_writing()
            structlog.contextvars.reset_contextvars(**tokens)
