"""Test helpers: a running app, and a player client over a real WebSocket
that checks the frame rules of PROTOCOL.md on every frame it reads."""

from __future__ import annotations

import itertools
import ssl
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import WebSocketConnection, open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from baolife.app import App
from baolife.config import Settings
from baolife.net.ws import WsConnection


@asynccontextmanager
async def running_app(settings: Settings, **kwargs: Any) -> AsyncIterator[App]:
    """An App serving in the background; shut down gracefully on exit."""
    async with trio.open_nursery() as nursery:
        app = App(settings, **kwargs)
        await nursery.start(app.run)
        try:
            yield app
        finally:
            app.request_shutdown()


async def connected_pair() -> tuple[WsConnection, trio.SocketStream, WSConnection]:
    """A server-side WebSocket over real TCP on 127.0.0.1, after the
    handshake: (server side, client stream, client protocol)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client_stream = await trio.open_tcp_stream("127.0.0.1", port)
    server_stream = await listeners[0].accept()
    await listeners[0].aclose()
    server = WsConnection(server_stream, max_message_bytes=4096)
    client = WSConnection(ConnectionType.CLIENT)
    await client_stream.send_all(client.send(Request(host="127.0.0.1", target="/ws")))
    request = await server.handshake()
    assert request is not None and request.target == "/ws"
    await server.accept()
    client.receive_data(await client_stream.receive_some(4096))
    assert isinstance(next(client.events()), AcceptConnection)
    return server, client_stream, client


@asynccontextmanager
async def closing_transport(
    connecting: AbstractAsyncContextManager[WebSocketConnection],
) -> AsyncIterator[WebSocketConnection]:
    """``open_websocket_url(...)`` whose TCP stream is surely closed at the end.

    trio-websocket 0.12 leaves a client's socket open when the *server* ends
    the close handshake and then the TCP connection (the reader sees EOF in
    state CLOSED and stops without closing the stream; aclose() then finds
    the connection closed and returns): the socket leaks and a
    ResourceWarning fails the test under ``-W error``. The stream is closed
    after trio-websocket's own exit, so a client-side close handshake still
    happens first.
    """
    opened: WebSocketConnection | None = None
    try:
        async with connecting as ws:
            opened = ws
            yield ws
    finally:
        if opened is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(opened._stream)


def metric_samples(body: bytes | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A /metrics body as {(sample name, sorted label pairs): value}."""
    text = body.decode() if isinstance(body, bytes) else body
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class FrameRuleBroken(AssertionError):
    pass


class Client:
    """One connection. Every frame read is checked: a JSON object of type
    frame, at least one op, ticks strictly increasing, seq 0 before login and
    1, 2, 3... without gaps within a stream, nothing after a ``bye``."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.ops: deque[dict[str, Any]] = deque()
        self.seen: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._last_seq = 0
        self._last_tick = -1
        self.view: dict[str, Any] = {}

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, port: int, path: str = "/ws", ssl_context: ssl.SSLContext | None = None
    ) -> AsyncIterator[Client]:
        scheme = "wss" if ssl_context is not None else "ws"
        async with closing_transport(
            open_websocket_url(
                f"{scheme}://127.0.0.1:{port}{path}", ssl_context=ssl_context, message_queue_size=100_000
            )
        ) as ws:
            yield cls(ws)

    async def send(self, kind: str, **fields: Any) -> int:
        ref = next(self._ids)
        await self.ws.send_message(orjson.dumps({"type": kind, "id": ref, **fields}).decode())
        return ref

    async def send_raw(self, message: str | bytes) -> None:
        await self.ws.send_message(message)

    async def frame(self) -> dict[str, Any]:
        frame = orjson.loads(await self.ws.get_message())
        self._check(frame)
        self.frames.append(frame)
        self.ops.extend(frame["ops"])
        for op in frame["ops"]:
            self._track(op)
        return frame

    def _track(self, op: dict[str, Any]) -> None:
        """Keep :attr:`view`: the welcome snapshot with every state op applied."""
        if op["op"] == "welcome":
            self.view = dict(op["snapshot"])
            self.view["stats"] = dict(self.view["stats"])
            self.view["npcs"] = [dict(n) for n in self.view["npcs"]]
            self.view["prompts"] = list(self.view["prompts"])
            self.view["feed"] = list(self.view["feed"])
        elif not self.view:
            return
        elif op["op"] == "state":
            for key, value in op.items():
                if key == "stats":
                    self.view["stats"].update(value)
                elif key != "op":
                    self.view[key] = value
        elif op["op"] == "npc":
            npc = {k: v for k, v in op.items() if k != "op"}
            npcs = self.view["npcs"]
            index = next((i for i, n in enumerate(npcs) if n["id"] == npc["id"]), None)
            if index is None:
                npcs.append(npc)
            else:
                npcs[index] = npc
        elif op["op"] == "prompt":
            self.view["prompts"].append({k: v for k, v in op.items() if k != "op"})
        elif op["op"] == "prompt_closed":
            self.view["prompts"] = [p for p in self.view["prompts"] if p["id"] != op["id"]]
        elif op["op"] == "feed":
            self.view["feed"].append(op["text"])

    def _check(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "frame" or not isinstance(frame.get("ops"), list):
            raise FrameRuleBroken(f"not a frame: {frame}")
        if not frame["ops"]:
            raise FrameRuleBroken(f"empty frame: {frame}")
        if self.frames and self.frames[-1]["ops"][-1]["op"] == "bye":
            raise FrameRuleBroken(f"a frame after the bye: {frame}")
        if any(op["op"] == "bye" for op in frame["ops"][:-1]):
            raise FrameRuleBroken(f"an op after the bye: {frame}")
        if frame["tick"] <= self._last_tick:
            raise FrameRuleBroken(f"two frames in tick {frame['tick']} (or ticks went back)")
        self._last_tick = frame["tick"]
        seq = frame["seq"]
        new_stream = any(op["op"] == "welcome" for op in frame["ops"]) and seq == 1
        if seq != 0 and not new_stream and seq != self._last_seq + 1:
            raise FrameRuleBroken(f"seq {seq} after {self._last_seq}")
        if seq:
            self._last_seq = seq

    async def op(self, kind: str | None = None, *, ref: Any = None, **match: Any) -> dict[str, Any]:
        """The next op of ``kind`` (and ``ref``/fields), reading frames as
        needed; the ops skipped on the way are kept in :attr:`seen`."""
        while True:
            while not self.ops:
                await self.frame()
            op = self.ops.popleft()
            self.seen.append(op)
            if kind is not None and op["op"] != kind:
                continue
            if ref is not None and op.get("ref") != ref:
                continue
            if any(op.get(k) != v for k, v in match.items()):
                continue
            return op

    async def answer_to(self, ref: int) -> dict[str, Any]:
        """The first op that answers message ``ref`` (ack, error, pong, welcome...)."""
        return await self.op(ref=ref)

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        return await self.answer_to(await self.send(kind, **fields))

    async def register(self, name: str = "Test Player") -> tuple[str, dict[str, Any]]:
        ref = await self.send("register", name=name)
        registered = await self.op("registered", ref=ref)
        welcome = await self.op("welcome", ref=ref)
        return registered["token"], welcome

    async def closed(self) -> int:
        """Read until the server closes; the close code."""
        from trio_websocket import ConnectionClosed

        try:
            while True:
                await self.frame()
        except ConnectionClosed as exc:
            assert exc.reason is not None
            return exc.reason.code


def same_life(view: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """Assert a welcome snapshot holds the life a client last saw (prompt
    deadlines aside: they are recomputed for the new connection)."""
    for key in ("name", "life", "alive", "age_days", "stats", "money", "job", "education", "actions"):
        assert snapshot[key] == view[key], (key, snapshot[key], view[key])
    assert snapshot["npcs"] == view["npcs"], (snapshot["npcs"], view["npcs"])
    assert [p["id"] for p in snapshot["prompts"]] == [p["id"] for p in view["prompts"]]
    assert snapshot["feed"] == view["feed"][-len(snapshot["feed"]) :]


class RawClient:
    """A hand-driven WebSocket client (wsproto over a TCP stream) for what a
    well-behaved client library will not do: ignore pings, never read, send
    broken frames, send headers of our choosing."""

    def __init__(self, stream: trio.SocketStream, ws: Any) -> None:
        self.stream = stream
        self.ws = ws

    @classmethod
    async def handshake(
        cls, port: int, path: str = "/ws", headers: list[tuple[bytes, bytes]] | None = None, rcvbuf: int | None = None
    ) -> tuple[int, RawClient]:
        """Connect and shake hands; (HTTP status, client). 101 means accepted;
        on any other status the stream is already closed."""
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, RejectConnection, Request

        sock = trio.socket.socket()
        if rcvbuf is not None:
            import socket as stdsocket

            sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_RCVBUF, rcvbuf)
        await sock.connect(("127.0.0.1", port))
        stream = trio.SocketStream(sock)
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host="127.0.0.1", target=path, extra_headers=headers or [])))
        while True:
            data = await stream.receive_some(65536)
            if not data:
                await stream.aclose()
                raise trio.BrokenResourceError("closed during the handshake")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return 101, cls(stream, ws)
                if isinstance(event, RejectConnection):
                    await stream.aclose()
                    return event.status_code, cls(stream, ws)

    async def send_text(self, text: str) -> None:
        from wsproto.events import TextMessage

        await self.stream.send_all(self.ws.send(TextMessage(data=text)))

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def handshake_status(port: int, path: str = "/ws", headers: list[tuple[bytes, bytes]] | None = None) -> int:
    """The HTTP status of a WebSocket handshake (101 when accepted); closes it."""
    status, raw = await RawClient.handshake(port, path, headers)
    await raw.aclose()
    return status


async def add_players(store: Any, directory: Any, count: int) -> list[int]:
    """``count`` new players in ``store`` and ``directory``, held and dirty, as
    right after registration. Token hashes are unique per call, so a store
    shared between tests (MariaDB) never sees one twice."""
    from baolife.db.store import hash_token

    pids = []
    for i in range(count):
        pid = await store.create_account(f"P{i}", hash_token(f"{id(directory)}-{trio.current_time()}-{i}"))
        directory.create(pid, f"P{i}")
        pids.append(pid)
    return pids
