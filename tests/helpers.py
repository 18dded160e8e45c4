"""Test helpers: a running app, and a player client over a real WebSocket
that checks the frame rules of PROTOCOL.md on every frame it reads."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import WebSocketConnection, open_websocket_url

from baolife.app import App
from baolife.config import Settings


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
    1, 2, 3... without gaps within a stream."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.ops: deque[dict[str, Any]] = deque()
        self.seen: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._last_seq = 0
        self._last_tick = -1

    @classmethod
    @asynccontextmanager
    async def connect(cls, port: int, path: str = "/ws") -> AsyncIterator[Client]:
        async with closing_transport(
            open_websocket_url(f"ws://127.0.0.1:{port}{path}", message_queue_size=100_000)
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
        return frame

    def _check(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "frame" or not isinstance(frame.get("ops"), list):
            raise FrameRuleBroken(f"not a frame: {frame}")
        if not frame["ops"]:
            raise FrameRuleBroken(f"empty frame: {frame}")
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
