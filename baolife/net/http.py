"""The HTTP listener: ``/healthz``, ``/readyz``, ``/metrics`` and the web client.

A small HTTP/1.1 server on h11, one request per connection (probes,
scrapers and a browser loading a few files need no more). Routes are plain
functions returning ``(status, content type, body)``, never stored by a
cache; everything else goes to the :class:`Site` (the web client and its
/config.json: :mod:`baolife.net.webfiles`), which also names the headers
every answer carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Protocol

import attrs
import h11
import structlog
import trio

from .accept import Gate, accept_loop, http_refusal

__all__ = ["HttpListener", "Reply", "Request", "Route", "Site"]

log = structlog.get_logger("baolife.http")

Route = Callable[[], tuple[int, str, bytes]]
REQUEST_TIMEOUT = 10.0
MAX_REQUEST_BYTES = 16384
# The operators' API (baolife.admin) under this prefix: the one part of the
# listener that takes bodies (JSON, at most MAX_BODY_BYTES) and awaits.
ADMIN_PREFIX = "/admin"
MAX_BODY_BYTES = 65536
TEXT = "text/plain; charset=utf-8"


@attrs.frozen
class Request:
    """What a handler sees of a request: the method (``GET``), the path
    without its query, as sent (still percent-encoded), and the headers by
    lower-case name."""

    method: str
    path: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    # The query string (after ``?``), the body (only requests under
    # ADMIN_PREFIX read one) and the peer's address.
    query: str = ""
    body: bytes = b""
    remote: str = ""
    # The body was over MAX_BODY_BYTES and was not read (the handler answers 413).
    oversized: bool = False


@attrs.frozen
class Reply:
    """An answer: status, content type, body and headers of its own
    (``cache-control``, ``etag``). A 304 sends no body."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class Site(Protocol):
    """What the listener serves besides its routes."""

    def answer(self, request: Request) -> Reply | None:
        """The reply, or None for a 404."""
        ...

    def security_headers(self, request: Request) -> tuple[tuple[str, str], ...]:
        """Headers added to every answer (the routes' too)."""
        ...


class HttpListener:
    """Serves ``routes`` (path -> function) and ``site`` on ``host:port``."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: dict[str, Route],
        site: Site | None = None,
        *,
        max_connections: int,
        admin: Callable[[Request], Awaitable[Reply]] | None = None,
    ) -> None:
        self.host = host
        self.bind_port = port
        self.routes = routes
        self.site = site
        # Answers every request under ADMIN_PREFIX when set (baolife.admin);
        # unset, those paths are the site's (which has none: 404).
        self.admin = admin
        self.port: int | None = None
        self.requests = 0
        # Its own bound on open connections, apart from the WebSocket
        # listener's, so probes and scrapes get through when that one is full.
        self.gate = Gate(max_connections)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.bind_port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        busy = http_refusal(503, "Service Unavailable", "too many HTTP connections; try again\n")
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                await nursery.start(
                    partial(accept_loop, listener, self._handle, nursery, self.gate, name="http", refusal=busy)
                )
            task_status.started(self.port)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(REQUEST_TIMEOUT):
                await self._serve_one(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return  # the client went away or spoke broken HTTP: nothing to answer
        except Exception:  # one request's fault must not stop the listener
            log.exception("http_request_failed")
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(MAX_REQUEST_BYTES)
                if not data:
                    return
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                break
            return
        self.requests += 1
        path, _, query = event.target.decode("ascii", "replace").partition("?")
        request = Request(
            method=event.method.decode("ascii", "replace").upper(),
            path=path,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers},
            query=query,
            remote=_peer(stream),
        )
        if self.admin is not None and (path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")):
            body = await _read_body(conn, stream, request)
            if body is None:
                request = attrs.evolve(request, oversized=True)
            reply = await self.admin(attrs.evolve(request, body=body or b""))
        else:
            reply = self.reply(request)
        headers = [("content-type", reply.content_type)]
        if reply.status != 304:
            headers.append(("content-length", str(len(reply.body))))
        headers += [*reply.headers, ("x-content-type-options", "nosniff")]
        if self.site is not None:
            headers += self.site.security_headers(request)
        headers.append(("connection", "close"))
        data = conn.send(h11.Response(status_code=reply.status, headers=headers))
        if request.method != "HEAD" and reply.status != 304:
            data += conn.send(h11.Data(data=reply.body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
        if reply.status == 413:
            await _linger(stream)

    def reply(self, request: Request) -> Reply:
        """The answer to ``request``: a route, else the site, else 404."""
        if request.method not in ("GET", "HEAD"):
            return Reply(405, TEXT, b"method not allowed\n", (("allow", "GET, HEAD"),))
        route = self.routes.get(request.path)
        if route is not None:
            status, ctype, body = route()
            return Reply(status, ctype, body, (("cache-control", "no-store"),))
        found = self.site.answer(request) if self.site is not None else None
        return found or Reply(404, TEXT, b"not found\n", (("cache-control", "no-store"),))


def _peer(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except (OSError, IndexError, TypeError):
        return ""


LINGER_SECONDS = 2.0
LINGER_BYTES = 32 * 1024 * 1024


async def _linger(stream: trio.SocketStream) -> None:
    """Read and drop what the client still sends (a body refused unread), for
    a bounded time and amount: closing with unread data would reset the
    connection, and the client might lose the answer before reading it."""
    dropped = 0
    with trio.move_on_after(LINGER_SECONDS):
        while dropped < LINGER_BYTES:
            data = await stream.receive_some(65536)
            if not data:
                return
            dropped += len(data)


async def _read_body(conn: h11.Connection, stream: trio.SocketStream, request: Request) -> bytes | None:
    """The request's body, or None when it is over :data:`MAX_BODY_BYTES`
    (said by its Content-Length, or found reading it): then it is not read."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(MAX_REQUEST_BYTES)
            if not data:
                raise trio.BrokenResourceError("the client went away in the body")
            conn.receive_data(data)
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_BYTES:
                return None
        else:  # EndOfMessage
            return bytes(body)
