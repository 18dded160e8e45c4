"""The server side of one WebSocket connection: wsproto over a trio stream.

Why not trio-websocket: its reader closes the TCP stream without a close
frame when wsproto reports invalid UTF-8, so a client sees 1006 where RFC
6455 and PROTOCOL.md require 1007; and its ``send_message`` re-encodes every
message and takes a lock per send. This module is the thin part we need:

* reading: whole messages, with the size limit enforced while the message
  arrives (close 1009 before buffering it). Two ways in: the listener's
  :class:`~baolife.net.readhub.ReadHub` calls :meth:`WsConnection.read_nowait`
  when the socket is readable and takes :meth:`WsConnection.next_message`
  (plain TCP); a reader task awaits :meth:`WsConnection.receive` (TLS, test
  streams, the bare server's A/B);
* writing: only the connection's writer task calls :meth:`send`; frames are
  built here from the frame bytes the tick loop encoded once.

Control frames the reader must answer (pong, close replies) are handed to
the ``control`` callback, which queues them behind the frames already
waiting, so one task alone writes to the stream.

What clients send is almost always whole, short text frames (a ``ping``, an
``act``: under 126 bytes, one frame each). Those are read by
:mod:`baolife.net.shortframes`; wsproto parses the rest, and its frame
protocol is kept only while it holds part of a frame.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Callable
from typing import cast

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from ..protocol import CloseCode
from .shortframes import FrameWalk, short_texts

__all__ = ["ConnectionDone", "WsConnection", "text_frame"]

RECEIVE_SIZE = 16384


class ConnectionDone(Exception):  # noqa: N818 - a state, not a failure
    """The connection is closing or closed; ``code`` is the close code
    (1006 when the peer vanished without a close frame)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


# The header of a frame shorter than 126 bytes, by its length (most game
# frames are: one ``state`` op is about 90), taken from a table rather than
# built per frame.
_SHORT_HEADERS = tuple(bytes((0x81, n)) for n in range(126))


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame holding ``payload`` (already UTF-8)."""
    n = len(payload)
    if n < 126:
        return _SHORT_HEADERS[n] + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class WsConnection:
    """One server-side WebSocket. One task reads (:meth:`handshake`, then
    :meth:`receive`); one task writes (:meth:`accept`, :meth:`send`)."""

    def __init__(
        self, stream: trio.abc.Stream, *, max_message_bytes: int, control: Callable[[bytes], None] | None = None
    ) -> None:
        self.stream = stream
        self.max_message_bytes = max_message_bytes
        self.control: Callable[[bytes], None] = control or (lambda data: None)
        # The handshake's WSConnection until accept(); its HTTP machinery
        # (h11's connection, state, buffer, the request: 11 objects for the
        # collector to walk) is not kept for the connection's life.
        self._hs: WSConnection | None = WSConnection(ConnectionType.SERVER)
        # Then wsproto's frame protocol, only while it is needed (see _frames).
        self._ws: Connection | None = None
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        # Whole messages read and not yet taken; None while there are none,
        # so an idle connection does not keep a deque's block (~600 bytes,
        # of thousands of connections; issue 15).
        self._messages: deque[str | bytes] | None = None
        self._parts: list[str | bytes] = []
        # Where wsproto is in the frames given to it; None between frames
        # (as at the start: its server side drops what came with the request).
        self._walk: FrameWalk | None = None
        self._size = 0
        self._done: ConnectionDone | None = None
        self._peer_closed: trio.Event | None = None
        self.last_pong = 0.0

    @property
    def peer_closed(self) -> trio.Event:
        """Set once the connection has ended (the peer's close read, or the
        stream lost). Made when first asked for: only a closing writer waits
        on it, and an Event with its set of waiters was about 400 bytes of
        every connection (docs/BENCHMARKS.md, issue 15)."""
        event = self._peer_closed
        if event is None:
            event = self._peer_closed = trio.Event()
            if self._done is not None:
                event.set()
        return event

    # ----------------------------------------------------------------- handshake

    async def handshake(self) -> Request | None:
        """Read the HTTP upgrade request. None if the peer sent something that
        is not a WebSocket handshake (it has been answered with 400)."""
        while True:
            data = await self.stream.receive_some(RECEIVE_SIZE)
            if not data:
                return None
            handshake = self._handshake()
            try:
                handshake.receive_data(cast(bytes, data))
            except RemoteProtocolError as exc:
                if exc.event_hint is not None:
                    await self._send_quietly(handshake.send(exc.event_hint))
                return None
            for event in handshake.events():
                if isinstance(event, Request):
                    return event

    def _handshake(self) -> WSConnection:
        if self._hs is None:
            raise RuntimeError("the handshake is over")
        return self._hs

    async def accept(self) -> None:
        data = self._handshake().send(AcceptConnection())
        # What it made for the frames is not kept: a new one is the same (_frames).
        self._hs = None
        await self.stream.send_all(data)

    async def reject(self, status: int, body: bytes = b"") -> None:
        """Refuse the handshake with an HTTP status (e.g. 503, 404)."""
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        handshake = self._handshake()
        data = handshake.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        data += handshake.send(RejectData(data=body, body_finished=True))
        await self._send_quietly(data)

    async def _send_quietly(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the peer is gone; the caller closes the stream

    # ----------------------------------------------------------------- reading

    async def receive(self) -> str | bytes:
        """The next whole message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionDone: the peer closed, vanished, broke the protocol
                (1002, 1007) or sent a message over the limit (1009). Close
                replies have already been handed to ``control``.
        """
        while True:
            message = self.next_message()
            if message is not None:
                return message
            try:
                data = await self._receive_some()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self._feed(data)

    def next_message(self) -> str | bytes | None:
        """The next whole message already read, or None when more must be read.

        Raises:
            ConnectionDone: as :meth:`receive`, once the messages read before
                the end have been taken.
        """
        messages = self._messages
        if messages:
            message = messages.popleft()
            if not messages:
                self._messages = None
            return message
        if self._done is not None:
            raise self._done
        return None

    @property
    def fd(self) -> int | None:
        """The socket's descriptor on a plain TCP stream (None for TLS and
        test streams, and once the socket is closed)."""
        if self._socket is None:
            return None
        fd = self._socket.fileno()
        return fd if fd >= 0 else None

    def read_nowait(self) -> bool:
        """Read once from the socket without waiting (for a caller that knows
        it is readable, :class:`~baolife.net.readhub.ReadHub`) and parse what
        came; take the messages with :meth:`next_message`. False when there
        was nothing to read. Only on a plain TCP stream (``fd`` not None)."""
        try:
            data = self._read_fd()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""  # reset, or closed under us: the connection is lost
        if data is None:
            return False
        self._feed(data)
        return True

    def _read_fd(self) -> bytes | None:
        """One non-blocking read of the socket; None when it has nothing now.

        Raises:
            trio.ClosedResourceError: the socket was closed.
            trio.BrokenResourceError: the read failed (reset by the peer, ...).
        """
        # Asked each time: after a close the number may belong to another socket.
        fd = self.fd
        if fd is None:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            return os.read(fd, RECEIVE_SIZE)
        except BlockingIOError:
            return None  # the caller waits outside this handler: the exception dies now
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    def _feed(self, data: bytes) -> None:
        if self._done is not None:
            return  # past the end (1006 after a close, or a failure): nothing more is parsed
        if not data:
            self._finish(ConnectionDone(CloseCode.LOST, "connection lost"))
            return
        ws = self._ws
        if self._walk is None and data[0] == 0x81 and (ws is None or ws.state is ConnectionState.OPEN):
            data = self._take_short_texts(data)
            if not data:
                return
        walk = self._walk or FrameWalk()
        self._walk = None if walk.walk(data) else walk
        ws = self._frames()
        try:
            ws.receive_data(data)
        except RemoteProtocolError:
            self._fail(CloseCode.PROTOCOL_ERROR, "protocol error")
            return
        self._process(ws)
        self._let_go()

    def _frames(self) -> Connection:
        """wsproto's frame protocol, made when a frame needs it. While the
        connection is open and wsproto between frames, a new one is the same
        as any, so it is let go then (:meth:`_let_go`): most connections only
        ever send short text frames, and one was about 1.4 KB of every
        connection (its parser, buffers, a generator, an event deque)."""
        ws = self._ws
        if ws is None:
            if self._hs is not None:
                raise RuntimeError("the handshake is not over")
            ws = self._ws = Connection(ConnectionType.SERVER)
        return ws

    def _let_go(self) -> None:
        ws = self._ws
        if ws is not None and self._walk is None and ws.state is ConnectionState.OPEN:
            self._ws = None

    def _take_short_texts(self, data: bytes) -> bytes:
        """Take the short text frames at the start of ``data`` as messages
        (wsproto is between frames); returns the bytes left for wsproto."""
        texts, used = short_texts(data, self.max_message_bytes)
        if used:
            if self._messages is None:
                self._messages = deque(texts)
            else:
                self._messages.extend(texts)
        return data[used:]

    async def _receive_some(self) -> bytes:
        """``stream.receive_some`` with trio's checkpoints; on a plain TCP
        stream it reads the descriptor itself and waits with
        ``wait_readable``. Every connection spends most of its life blocked
        here, and what a blocked read holds is what the garbage collector
        walks: trio's socket layers hold about twice as many objects (context
        managers, wrappers) as this. See docs/BENCHMARKS.md, issue 8."""
        socket = self._socket
        if socket is None:
            return cast(bytes, await self.stream.receive_some(RECEIVE_SIZE))
        await trio.lowlevel.checkpoint_if_cancelled()
        while (data := self._read_fd()) is None:
            await trio.lowlevel.wait_readable(socket)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    def _process(self, ws: Connection) -> None:
        for event in ws.events():
            if self._done is not None:
                break
            if isinstance(event, (TextMessage, BytesMessage)):
                self._message_part(event)
            elif isinstance(event, Ping):
                self.control(ws.send(event.response()))
            elif isinstance(event, Pong):
                self.last_pong = trio.current_time()
            elif isinstance(event, CloseConnection):
                self._peer_close(event)

    def _message_part(self, event: TextMessage | BytesMessage) -> None:
        data = event.data
        self._size += len(data.encode("utf-8")) if isinstance(data, str) else len(data)
        if self._size > self.max_message_bytes:
            self._fail(CloseCode.TOO_BIG, f"message over {self.max_message_bytes} bytes")
            return
        self._parts.append(cast("str | bytes", data))
        if event.message_finished:
            if self._messages is None:
                self._messages = deque()
            if isinstance(event, TextMessage):
                self._messages.append("".join(self._parts))  # type: ignore[arg-type]
            else:
                self._messages.append(b"".join(self._parts))  # type: ignore[arg-type]
            self._parts = []
            self._size = 0

    def _peer_close(self, event: CloseConnection) -> None:
        ws = self._frames()
        state = ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer started the close handshake: answer it.
            self.control(ws.send(event.response()))
            self._finish(ConnectionDone(event.code, event.reason or ""))
        elif state is ConnectionState.CLOSED:
            # The peer answered our close.
            self._finish(ConnectionDone(event.code, event.reason or ""))
        else:
            # wsproto failed to parse (e.g. invalid UTF-8: 1007): fail the
            # connection with that code, as RFC 6455 requires.
            self._fail(event.code, event.reason or "")

    def _fail(self, code: int, reason: str) -> None:
        ws = self._frames()
        if ws.state is ConnectionState.OPEN:
            self.control(ws.send(CloseConnection(code=code, reason=reason[:120])))
        self._finish(ConnectionDone(code, reason))

    def _finish(self, done: ConnectionDone) -> None:
        if self._done is None:
            self._done = done
        if self._peer_closed is not None:
            self._peer_closed.set()

    # ----------------------------------------------------------------- writing

    @property
    def open(self) -> bool:
        """Past the handshake, and no close sent or received."""
        if self._hs is not None:
            return False
        return self._ws is None or self._ws.state is ConnectionState.OPEN

    def close_frame(self, code: int, reason: str) -> bytes:
        """The bytes of our close frame, or b"" when a close is already under way."""
        if not self.open:
            return b""
        return self._frames().send(CloseConnection(code=code, reason=reason))

    def ping_frame(self, payload: bytes = b"hb") -> bytes:
        if not self.open:
            return b""
        data = self._frames().send(Ping(payload=payload))
        self._let_go()
        return data

    async def send(self, data: bytes) -> None:
        """Write bytes (whole frames). Only the writer task calls this, and
        never under a timeout: a cancelled write would cut a frame."""
        await self.stream.send_all(data)
