"""The WebSocket listener: handshakes, connection limits, reading, one writer
per connection, and a sweeper for deadlines and dead peers.

Reading parses each message into a command (or the error to answer with) and
puts it into the tick loop's inbox. On plain TCP one task reads every
connection (:class:`~baolife.net.readhub.ReadHub`, see there why); a
connection's own task wakes only to run its login messages (they wait on the
store) and to end. Over TLS each connection has its own reader task. The
writer drains the session's outbound queue. An exception in one connection
is logged and ends that connection only. The sweeper, one task for all connections,
closes those that did not log in within ``login_timeout`` (1008), says
``bye`` idle to those silent for ``idle_timeout`` (4001), and pings quiet
peers, dropping those that do not answer.

Behind a front proxy every peer is the proxy: when the peer is within
``trusted_proxies``, the client's address is the right-most entry of the
handshake's ``X-Forwarded-For`` that is not itself a trusted proxy (see
:func:`client_address`), so per-IP limits and logs see players, not the proxy.
"""

from __future__ import annotations

import ipaddress
import select
import ssl
from collections import Counter
from collections.abc import Iterable
from functools import partial
from typing import Any

import attrs
import structlog
import trio

from .. import protocol as wire
from ..config import Settings
from ..obs import Deferred
from ..tick.loop import Deliver, Detach, Inbox, Kick, TickLoop
from .accept import HANDSHAKE_ROOM, Gate, accept_loop, http_refusal
from .auth import Auth
from .readhub import ReadHub
from .session import CLOSE_WAIT, Session
from .ws import ConnectionDone, WsConnection

__all__ = ["WsListener", "ListenerStatistics"]

log = structlog.get_logger("baolife.net")

HANDSHAKE_TIMEOUT = 5.0
_CLOSE_REASONS = {
    1000: "closed",
    1001: "shutdown",
    1002: "protocol",
    1006: "lost",
    1007: "bad_utf8",
    1008: "policy",
    1009: "too_big",
    1011: "internal",
    4000: "replaced",
    4001: "idle",
}
SWEEP_EVERY = 1.0
_LOGIN_TYPES = (wire.Register, wire.Login, wire.Resume)


# The answer at accept when the listener holds as many streams as it may.
FULL = http_refusal(503, "Service Unavailable", "server is full; try again later\n")


@attrs.frozen
class ListenerStatistics:
    connections: int
    accepted: int
    refused: dict[str, int]
    closed: dict[str, int]
    inbound: dict[str, int]
    queued_frames: int
    queued_bytes: int
    max_queued_frames: int
    accept_errors: int = 0


def client_address(peer: str, headers: Iterable[tuple[bytes, bytes]], trusted: tuple[Any, ...]) -> str:
    """The address per-IP limits count: the TCP peer, unless the peer is a
    trusted front proxy; then the right-most address of X-Forwarded-For that
    is not itself a trusted proxy. Nothing a client sends directly can
    change its address."""
    if not trusted or not _within(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops.extend(h.strip() for h in value.decode("latin-1").split(","))
    for hop in reversed(hops):
        if not _within(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer


def _within(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


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
        self.inbound: Counter[str] = Counter()
        self._accept_scope = trio.CancelScope()
        self._conns: trio.Nursery | None = None
        self._changed = trio.Event()
        self.hub = ReadHub() if hasattr(select, "epoll") else None
        # Streams held open, handshakes included: past it a connection is
        # answered 503 at accept, before the process runs out of descriptors.
        self.gate = Gate(settings.max_connections + HANDSHAKE_ROOM)
        self._admitting = 0

    def statistics(self) -> ListenerStatistics:
        frames = [s.queued_frames for s in self.sessions]
        return ListenerStatistics(
            connections=len(self.sessions),
            accepted=self.accepted,
            refused=dict(self.refused) | ({"capacity": self.gate.refused} if self.gate.refused else {}),
            closed=dict(self.closed),
            inbound=dict(self.inbound),
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
            async with trio.open_nursery() as conns:
                self._conns = conns
                with self._accept_scope:
                    async with trio.open_nursery() as accept:
                        accept.start_soon(self._sweeper)
                        # Plain TCP gets an HTTP 503 over the bound; TLS is just closed.
                        refusal = b"" if self.settings.tls_cert else FULL
                        for listener in listeners:
                            loop = partial(accept_loop, listener, self._handle, conns, self.gate, refusal=refusal)
                            await accept.start(partial(loop, name="ws"))
                        task_status.started(self.port)
            reading.cancel_scope.cancel()  # every connection has ended
        log.info("ws_listener_stopped")

    async def wait_connections(self, at_most: int) -> None:
        """Return once at most ``at_most`` connections are open."""
        while len(self.sessions) > at_most:
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
        if self._conns is not None:
            self._conns.cancel_scope.cancel()
        return left

    # ----------------------------------------------------------------- one connection

    async def _handle(self, stream: trio.abc.Stream) -> None:
        remote = _peer(stream)
        session: Session | None = None
        failed = False
        try:
            conn = WsConnection(stream, max_message_bytes=self.settings.max_message_bytes)
            with trio.move_on_after(HANDSHAKE_TIMEOUT):
                request = await conn.handshake()
                if request is not None:
                    remote = client_address(remote, request.extra_headers, self.settings.trusted_proxies)
                    session = await self._admit(conn, request.target, remote)
            if session is None:
                return
            await self._serve(session)
        except Exception:  # one connection's fault must not stop the listener
            failed = True
            log.exception("connection_failed", session=session.id if session else None, remote=remote)
        finally:
            if session is not None:
                self._forget(session, failed)
            with trio.CancelScope(shield=True):
                if session is not None and session.state != "dead" and not failed:
                    await _linger(stream)
                await trio.aclose_forcefully(stream)

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
            reason = _CLOSE_REASONS.get(session.close_code or 1006, f"code_{session.close_code}")
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
        # player: whoever this connection is logged in as when a line is written.
        with structlog.contextvars.bound_contextvars(session=session.id, player=Deferred(lambda: session.player_id)):
            async with trio.open_nursery() as nursery:
                session.cancel_scope = nursery.cancel_scope
                nursery.start_soon(self._write, session, nursery.cancel_scope)
                fd = session.conn.fd
                if self.hub is not None and self.hub.running and fd is not None:
                    await _HubReader(self, session, self.hub, fd).serve()
                else:
                    await self._read(session)
                # Let the writer send what is queued (a close reply, a bye), briefly.
                nursery.cancel_scope.deadline = min(nursery.cancel_scope.deadline, trio.current_time() + CLOSE_WAIT)

    async def _write(self, session: Session, scope: trio.CancelScope) -> None:
        try:
            await session.write_loop()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            session.abort("lost: connection lost")
        finally:
            scope.cancel()

    async def _read(self, session: Session) -> None:
        """The reader task of a connection the hub cannot read (TLS; no epoll)."""
        conn = session.conn
        while True:
            try:
                message = await conn.receive()
            except ConnectionDone as done:
                _reader_done(session, done)
                return
            login = self._message(session, message)
            if login is not None:
                await self.auth.handle(session, session.remote, login)

    def _message(self, session: Session, message: str | bytes) -> wire.Command | None:
        """Answer or queue one message read from ``session``; a login message
        is returned for the caller to run (it waits on the store), with
        nothing read after it handled before it is done."""
        session.last_rx = trio.current_time()
        if session.state != "open":
            return None  # closing: read only to see the peer's close
        if not session.allow_message():
            if session.strikes >= self.settings.rate_strikes:
                # Named here: over plain TCP this runs in the read hub's task,
                # outside the connection's bound context.
                log.warning(
                    "rate_limit_abuse",
                    remote=session.remote,
                    strikes=session.strikes,
                    session=session.id,
                    player=session.player_id,
                )
                session.close(1008, "rate limit exceeded")
                return None
            self.inbound["rate_limited"] += 1
            self.inbox.put(
                Deliver(session, wire.Error(code="rate_limited", message="too many messages; this one was dropped")),
                force=True,
            )
            return None
        try:
            cmd = wire.parse(message)
        except wire.Rejected as rejected:
            self.inbound["invalid"] += 1
            self.inbox.put(Deliver(session, rejected.op), force=True)
            return None
        self.inbound[cmd.type] += 1
        if isinstance(cmd, _LOGIN_TYPES):
            if session.player_id is not None:
                self.inbox.put(
                    Deliver(
                        session, wire.Error(code="not_allowed", message="already logged in; log out first", ref=cmd.ref)
                    ),
                    force=True,
                )
                return None
            return cmd
        if not self.inbox.put(Deliver(session, cmd)):
            self.inbox.put(
                Deliver(
                    session,
                    wire.Error(code="busy", message="the server is overloaded; try again in a moment", ref=cmd.ref),
                ),
                force=True,
            )
        return None

    # ----------------------------------------------------------------- sweeper

    async def _sweeper(self) -> None:
        # One pass a second over every connection, with the deadlines turned
        # into times once per pass: a few hundred ns per connection.
        s = self.settings
        while True:
            await trio.sleep(SWEEP_EVERY)
            now = trio.current_time()
            login_before = now - s.login_timeout
            idle_before = now - s.idle_timeout
            quiet_before = now - s.ping_interval
            for session in list(self.sessions):
                if session.state != "open":
                    continue
                conn = session.conn
                if conn.last_pong > session.last_rx:
                    session.last_rx = conn.last_pong
                if session.player_id is None:
                    if session.connected_at < login_before:
                        session.close(1008, "log in within the time limit")
                        continue
                elif session.last_message < idle_before and not session.kicked:
                    session.kicked = True
                    self.inbox.put(Kick(session, "idle", 4001), force=True)
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


def _reader_done(session: Session, done: ConnectionDone) -> None:
    if session.close_code is None:
        session.close_code = done.code
    if done.code == 1006:
        session.abort("lost: connection lost")
    else:
        session.finish()


class _HubReader:
    """Reads one connection from the listener's :class:`ReadHub`.

    The hub calls :meth:`readable` in its own task; the connection's task
    waits in :meth:`serve` and wakes only to run a login message (reading
    stops meanwhile, so what follows it is handled after it, as a reader task
    would) and to end: at the end of the stream, or with the exception a
    message raised, which ends this connection alone, as in a reader task.
    A line logged while reading runs in the hub's task, outside the context
    bound in :meth:`WsListener._serve`: it names ``session`` and ``player``."""

    def __init__(self, listener: WsListener, session: Session, hub: ReadHub, fd: int) -> None:
        self.listener = listener
        self.session = session
        self.hub = hub
        self.fd = fd
        self.login: wire.Command | None = None
        self.ended = False
        self.error: Exception | None = None
        self._wake = trio.Event()
        # One bound method for add and remove: the hub removes by identity.
        self._readable = self.readable

    async def serve(self) -> None:
        """Wait for logins to run and for the end; the descriptor is out of
        the hub when this returns (before the listener closes the stream)."""
        self.hub.add(self.fd, self._readable)
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                if self.error is not None:
                    raise self.error
                if self.login is not None:
                    cmd, self.login = self.login, None
                    await self.listener.auth.handle(self.session, self.session.remote, cmd)
                    self.hub.add(self.fd, self._readable)
                    self._drain()  # what arrived behind the login
                    continue
                if self.ended:
                    return
        finally:
            self.hub.remove(self.fd, self._readable)

    def readable(self) -> None:
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
                _reader_done(session, done)
                self._stop()
                return
            if message is None:
                return
            login = self.listener._message(session, message)
            if login is not None:
                self.login = login
                self.hub.remove(self.fd, self._readable)  # read on once it is done
                self._wake.set()

    def _stop(self) -> None:
        self.ended = True
        self.hub.remove(self.fd, self._readable)
        self._wake.set()
