"""The HTTP listener: ``/healthz``, ``/readyz``, ``/metrics`` and the web client.

A small HTTP/1.1 server on h11, one request per connection (probes,
scrapers and a browser loading three files need no more). Routes are plain
functions returning ``(status, content type, body)``; static files come from
one folder and are read once at start.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path

import h11
import structlog
import trio

__all__ = ["HttpListener", "Route", "static_routes"]

log = structlog.get_logger("baolife.http")

Route = Callable[[], tuple[int, str, bytes]]
REQUEST_TIMEOUT = 10.0
MAX_REQUEST_BYTES = 16384


def static_routes(folder: Path) -> dict[str, Route]:
    """A route per file of ``folder`` (``index.html`` also at ``/``)."""
    routes: dict[str, Route] = {}
    if not folder.is_dir():
        return routes
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        body = path.read_bytes()
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"

        def route(body: bytes = body, ctype: str = ctype) -> tuple[int, str, bytes]:
            return 200, ctype, body

        routes["/" + path.name] = route
        if path.name == "index.html":
            routes["/"] = route
    return routes


class HttpListener:
    """Serves ``routes`` (path -> function) on ``host:port``."""

    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.host = host
        self.bind_port = port
        self.routes = routes
        self.port: int | None = None
        self.requests = 0

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.bind_port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
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
        path = event.target.decode("ascii", "replace").split("?", 1)[0]
        method = event.method.upper()
        route = self.routes.get(path)
        if method not in (b"GET", b"HEAD"):
            status, ctype, body = 405, "text/plain; charset=utf-8", b"method not allowed\n"
        elif route is None:
            status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
        else:
            status, ctype, body = route()
        headers = [
            ("content-type", ctype),
            ("content-length", str(len(body))),
            ("connection", "close"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ]
        data = conn.send(h11.Response(status_code=status, headers=headers))
        if method != b"HEAD":
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
