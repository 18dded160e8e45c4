"""A logged-in (or logging-in) connection as the tick loop sees it.

The tick loop hands frames to :meth:`Session.send_frame`, which queues them
for the connection's writer task without waiting. The queue is bounded in
frames and in bytes; a client that lets it fill is a slow client and is
dropped at once (:meth:`Session.abort`), so it can neither delay the tick
nor hold memory.
"""

from __future__ import annotations

import itertools
from typing import Literal

import attrs
import trio

from .ws import WsConnection, text_frame

__all__ = ["Session"]

_ids = itertools.count(1)

# Extra queue room for control frames (pong, close) beyond the frame bound.
_CONTROL_SLACK = 16
CLOSE_WAIT = 2.0


@attrs.frozen
class _Close:
    code: int
    reason: str
    await_reply: bool


class Session:
    """One WebSocket connection: its outbound queue, its writer, its limits."""

    def __init__(
        self, conn: WsConnection, remote: str, *, max_frames: int, max_bytes: int, rate: float, burst: int
    ) -> None:
        self.id = next(_ids)
        self.conn = conn
        self.remote = remote
        self.player_id: int | None = None
        self.seq = 0
        self.state: Literal["open", "closing", "dead"] = "open"
        self.abort_reason = ""
        self.close_code: int | None = None
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.queued_frames = 0
        self.queued_bytes = 0
        self.frames_sent = 0
        self.bytes_sent = 0
        self.messages = 0
        now = trio.current_time()
        self.connected_at = now
        self.last_rx = now
        self.last_message = now
        self.ping_sent: float | None = None
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._tokens_at = now
        self.strikes = 0
        self.cancel_scope: trio.CancelScope | None = None
        self._send, self._recv = trio.open_memory_channel[bytes | _Close](max_frames + _CONTROL_SLACK)
        conn.control = self.send_control

    def __repr__(self) -> str:
        return f"<Session {self.id} player={self.player_id} {self.state}>"

    # ----------------------------------------------------------------- called by the tick loop

    def send_frame(self, frame: bytes) -> bool:
        """Queue one encoded frame. Never blocks; a full queue drops the client."""
        if self.state != "open":
            return False
        data = text_frame(frame)
        if self.queued_frames >= self.max_frames or self.queued_bytes + len(data) > self.max_bytes:
            self.abort("slow_client: outbound queue full")
            return False
        self._send.send_nowait(data)
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
        self._put(data)

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

    def _put(self, item: bytes | _Close) -> None:
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self.abort("slow_client: control queue full")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the writer has finished: nothing more goes out

    # ----------------------------------------------------------------- teardown

    def abort(self, reason: str) -> None:
        """Drop the connection now, without a close handshake."""
        if self.state == "dead":
            return
        self.state = "dead"
        self.abort_reason = reason
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    async def write_loop(self) -> None:
        """The writer task: the only writer of this connection's stream."""
        async with self._recv:
            async for item in self._recv:
                if isinstance(item, bytes):
                    await self.conn.send(item)
                    if item[0] == 0x81:
                        self.queued_frames = max(0, self.queued_frames - 1)
                        self.queued_bytes = max(0, self.queued_bytes - len(item))
                        self.frames_sent += 1
                        self.bytes_sent += len(item)
                    continue
                if item.code:
                    data = self.conn.close_frame(item.code, item.reason)
                    if data:
                        await self.conn.send(data)
                if item.await_reply:
                    with trio.move_on_after(CLOSE_WAIT):
                        await self.conn.peer_closed.wait()
                await self._send_queued_close_reply()
                return

    async def _send_queued_close_reply(self) -> None:
        # If the peer started closing at the same time as we did, the reader
        # has queued the reply to its close frame behind our close item; that
        # reply is the close frame the peer waits for. Nothing but a close
        # frame may follow a close, so only those are sent.
        while True:
            try:
                item = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            if isinstance(item, bytes) and item[0] == 0x88:
                await self.conn.send(item)
