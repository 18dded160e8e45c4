"""A logged-in (or logging-in) connection as the tick loop sees it.

The tick loop hands frames to :meth:`Session.send_frame`, which never waits:

* fast path: when nothing is waiting for this connection's writer, the frame
  is written straight to the socket with a non-blocking ``write``; a socket
  with room takes it whole (the common case: one syscall, no task switch);
* otherwise (or for what the socket did not take) the frame is queued for
  the connection's writer task, which sends in order.

The writer task and its queue exist only while something waits to be sent:
the first item queued starts the task in the connection's nursery
(:meth:`Session.start_writing`), or through the :class:`Host` of a
connection that has no task of its own (:meth:`Session.start_hosted`), and
the task ends once the queue is empty, reopening the fast path. Most
connections never need one (every frame fits the socket), and a parked
task with a channel was 2-3 KB of every connection's memory
(docs/BENCHMARKS.md, issue 15).

The queue is bounded in frames and in bytes; a client that lets it fill is a
slow client and is dropped at once (:meth:`Session.abort`), so it can neither
delay the tick nor hold memory. The fast path needs the socket's file
descriptor, so it exists only for plain TCP (not TLS) and is switched off
(:meth:`Session.release_socket`) before the stream is closed, since a closed
descriptor's number can be reused by the next connection.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from typing import Literal, Protocol

import attrs
import trio

from .ws import WsConnection, text_frame

__all__ = ["Host", "Session"]

_ids = itertools.count(1)

# Extra queue room for control frames (pong, close) beyond the frame bound.
_CONTROL_SLACK = 16
CLOSE_WAIT = 2.0


class Host(Protocol):
    """What serves a connection that has no task of its own
    (:class:`baolife.net.reading.HubConnection`): it runs the writer when
    frames wait, and ends the connection when told."""

    def start_writer(self) -> None:
        """Start a task that awaits :meth:`Session.write_hosted` (at once, without waiting)."""

    def end(self) -> None:
        """End the connection (idempotent; without waiting)."""


@attrs.frozen
class _Close:
    code: int
    reason: str
    await_reply: bool


@attrs.frozen
class _Data:
    data: bytes
    frame: bool  # a game frame (counted against the queue bounds), not a control frame


class Session:
    """One WebSocket connection: its outbound queue, its writer, its limits."""

    # Slots: the tick loop touches every session once a tick, right after a
    # system call has evicted the caches; the fields of the fast path read
    # from the object itself (first here, so together) rather than through
    # a dict of values elsewhere in memory.
    __slots__ = (
        "state",
        "_fd",
        "_queue",
        "bytes_sent",
        "frames_sent",
        "writer_frames",
        "queued_frames",
        "queued_bytes",
        "max_frames",
        "max_bytes",
        "id",
        "conn",
        "remote",
        "player_id",
        "abort_reason",
        "close_code",
        "messages",
        "connected_at",
        "last_rx",
        "last_message",
        "ping_sent",
        "kicked",
        "rate",
        "burst",
        "_tokens",
        "_tokens_at",
        "strikes",
        "cancel_scope",
        "_nursery",
        "_host",
        "_writing",
        "_sealed",
    )

    def __init__(
        self, conn: WsConnection, remote: str, *, max_frames: int, max_bytes: int, rate: float, burst: int
    ) -> None:
        self.id = next(_ids)
        self.conn = conn
        self.remote = remote
        self.player_id: int | None = None
        self.state: Literal["open", "closing", "dead"] = "open"
        self.abort_reason = ""
        self.close_code: int | None = None
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.queued_frames = 0
        self.queued_bytes = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        self.writer_frames = 0  # of frames_sent, those the writer task sent
        self.messages = 0
        now = trio.current_time()
        self.connected_at = now
        self.last_rx = now
        self.last_message = now
        self.ping_sent: float | None = None
        self.kicked = False  # told to go for idleness
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._tokens_at = now
        self.strikes = 0
        self.cancel_scope: trio.CancelScope | None = None
        # Items queued for the writer, the one being written first (it leaves
        # once written); None when there are none. The fast path is open only
        # while nothing is queued, so nothing overtakes what is.
        self._queue: deque[_Data | _Close] | None = None
        self._fd = _socket_fd(conn.stream)
        # Where the writer task is started; True while it runs.
        self._nursery: trio.Nursery | None = None
        # Or what runs it for a connection without a task of its own (see Host).
        self._host: Host | None = None
        self._writing = False
        # Nothing more goes out: the writer sent a close, or the connection's
        # nursery is gone.
        self._sealed = False
        conn.control = self.send_control

    def __repr__(self) -> str:
        return f"<Session {self.id} player={self.player_id} {self.state}>"

    @property
    def direct_writes(self) -> int:
        """Frames written whole by the fast path (not by the writer task)."""
        return self.frames_sent - self.writer_frames

    # ----------------------------------------------------------------- called by the tick loop

    def send_frame(self, frame: bytes) -> bool:
        """Send or queue one encoded frame. Never blocks; a full queue drops the client."""
        if self.state != "open":
            return False
        data = text_frame(frame)
        fd = self._fd
        if fd is not None and not self._queue:
            try:
                written = os.write(fd, data)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                self.abort(f"lost: {exc.strerror}")
                return False
            self.bytes_sent += written
            if written == len(data):
                self.frames_sent += 1
                return True
            data = data[written:]  # the rest of this frame goes first through the writer
        if self.queued_frames >= self.max_frames or self.queued_bytes + len(data) > self.max_bytes:
            self.abort("slow_client: outbound queue full")
            return False
        self._put(_Data(data, frame=True))
        self.queued_frames += 1
        self.queued_bytes += len(data)
        return True

    def close(self, code: int, reason: str) -> None:
        """Send our close frame after what is queued, then wait briefly for the reply."""
        if self.state != "open":
            return
        self.state = "closing"
        self.close_code = code
        self._put(_Close(code, reason, await_reply=True))

    # ----------------------------------------------------------------- called by the reader

    def send_control(self, data: bytes) -> None:
        """Queue a control frame the reader must send (pong, close reply)."""
        if self.state == "dead" or not data:
            return
        self._put(_Data(data, frame=False))

    def finish(self) -> None:
        """The reader is done (close handshake or failure): the writer sends
        what is queued, including any close frame, and stops."""
        if self.state == "dead":
            return
        self.state = "closing"
        self._put(_Close(0, "", await_reply=False))

    def allow_message(self) -> bool:
        """Token bucket of the per-connection message rate."""
        now = trio.current_time()
        self.last_message = now
        self.messages += 1
        tokens = min(float(self.burst), self._tokens + (now - self._tokens_at) * self.rate)
        self._tokens_at = now
        if tokens < 1.0:
            self._tokens = tokens
            self.strikes += 1
            return False
        self._tokens = tokens - 1.0
        self.strikes = 0
        return True

    def _put(self, item: _Data | _Close) -> None:
        if self._sealed:
            return  # the writer has finished: nothing more goes out
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        elif len(queue) >= self.max_frames + _CONTROL_SLACK:
            self.abort("slow_client: control queue full")
            return
        queue.append(item)
        self._start_writer()

    # ----------------------------------------------------------------- the writer

    def start_writing(self, nursery: trio.Nursery) -> None:
        """Run the writer in ``nursery`` (the connection's: cancelling it ends
        the connection) whenever something is queued, from now until
        :meth:`stop_writing`."""
        self.cancel_scope = nursery.cancel_scope
        self._nursery = nursery
        if self._queue and not self._sealed:
            self._start_writer()

    def start_hosted(self, host: Host) -> None:
        """As :meth:`start_writing`, for a connection without a task of its
        own: ``host`` runs each writer (:meth:`write_hosted`) and is told
        when the connection must end, where :meth:`start_writing` cancels the
        connection's nursery."""
        self._host = host
        if self._queue and not self._sealed:
            self._start_writer()

    def _start_writer(self) -> None:
        """Start the writer in the connection's nursery (or its host) unless
        it runs (or there is neither yet: :meth:`start_writing` starts it then)."""
        if self._writing:
            return
        if self._host is not None:
            self._writing = True
            self._host.start_writer()
        elif self._nursery is not None:
            self._writing = True
            self._nursery.start_soon(self._write)

    def stop_writing(self) -> None:
        """The connection's nursery (or its host) is done: nothing more is sent."""
        self._nursery = None
        self._host = None
        self._sealed = True
        self._queue = None

    @property
    def writing(self) -> bool:
        """A writer task runs."""
        return self._writing

    # ----------------------------------------------------------------- teardown

    def release_socket(self) -> None:
        """Stop writing to the socket directly (call before closing the stream)."""
        self._fd = None

    def abort(self, reason: str) -> None:
        """Drop the connection now, without a close handshake."""
        if self.state == "dead":
            return
        self.state = "dead"
        self.abort_reason = reason
        self._fd = None
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()
        if self._host is not None:
            self._host.end()

    async def write_hosted(self) -> bool:
        """The writer of a hosted connection (:meth:`start_hosted`), run by its
        host in a task of the host's: :meth:`write_loop` under a cancel scope
        of its own, which :meth:`abort` cancels. Returns True once the
        connection must end (its close is done, or it was lost or aborted).

        Raises:
            Exception: what writing raised besides a lost connection (the
                host ends the connection as failed).
        """
        ended = True
        try:
            with trio.CancelScope() as scope:
                self.cancel_scope = scope
                if self.state != "dead":  # aborted before this task ran
                    ended = await self._written()
        finally:
            self.cancel_scope = None
            self._writing = False
        return ended

    async def _write(self) -> None:
        ended = True
        try:
            ended = await self._written()
        finally:
            self._writing = False
            if ended and self.cancel_scope is not None:
                self.cancel_scope.cancel()  # the connection ends with its writer

    async def _written(self) -> bool:
        """:meth:`write_loop`, a lost connection aborting the session (True: it ends)."""
        try:
            return await self.write_loop()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.abort("lost: connection lost")
            return True

    async def write_loop(self) -> bool:
        """The writer task: sends what the fast path could not, in order.
        Returns False once the queue is empty (the next item queued starts a
        writer again), True once the close is done (the connection ends)."""
        conn = self.conn
        while True:
            queue = self._queue
            if not queue:
                self._queue = None
                return False
            item = queue[0]  # left in the queue while written: the fast path stays shut
            if isinstance(item, _Data):
                await conn.send(item.data)
                queue.popleft()
                if item.frame:
                    self.queued_frames -= 1
                    self.queued_bytes -= len(item.data)
                    self.frames_sent += 1
                    self.writer_frames += 1
                    self.bytes_sent += len(item.data)
                continue
            queue.popleft()
            if item.code:
                data = conn.close_frame(item.code, item.reason)
                if data:
                    await conn.send(data)
            if item.await_reply:
                with trio.move_on_after(CLOSE_WAIT):
                    await conn.peer_closed.wait()
            await self._send_queued_close_reply(queue)
            self._sealed = True
            self._queue = None
            return True

    async def _send_queued_close_reply(self, queue: deque[_Data | _Close]) -> None:
        # If the peer started closing at the same time as we did, the reader
        # has queued the reply to its close frame behind our close item; that
        # reply is the close frame the peer waits for. Nothing but a close
        # frame may follow a close, so only those are sent.
        while queue:
            item = queue.popleft()
            if isinstance(item, _Data) and not item.frame and item.data[:1] == b"\x88":
                await self.conn.send(item.data)


def _socket_fd(stream: trio.abc.Stream) -> int | None:
    """The descriptor of a plain TCP stream (None for TLS and test streams)."""
    if isinstance(stream, trio.SocketStream):
        return stream.socket.fileno()
    return None
