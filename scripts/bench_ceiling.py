"""The bare server: BaoLife's WebSocket stack with no game behind it.

It measures the limit of the stack we stand on. It uses the same pieces as
the real server (baolife.net.ws.WsConnection over trio streams, baolife.net.
session.Session with its direct-write fast path and writer task, every
connection read by one task from one epoll set (baolife.net.readhub.ReadHub),
a drift-free 10 Hz tick loop building at most one frame per connection per
tick) and sends the same traffic shape (welcome on
register, one state frame per player per game day of 10 ticks, a prompt now
and then, pong/ack/npc_say answers in the next tick), but keeps no game state,
no database and no event logic.

Run it alone, or let ``scripts/loadtest --server bare`` start it.
``--no-direct-write`` sends every frame through the writer task (the send
path before the direct write), and ``--reader-tasks`` reads each connection
in its own task (the read path before the hub), for A/Bs of those changes.
It logs one JSON line ``{"event": "started", "ws": "HOST:PORT"}`` and stops
on SIGTERM.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from typing import Any

import orjson
import trio

from baolife.net.readhub import ReadHub
from baolife.net.session import Session
from baolife.net.ws import ConnectionDone, WsConnection

TICK_HZ = 10
DAY_TICKS = 10


class Bare:
    def __init__(self) -> None:
        self.rng = random.Random(1)
        self.pending: dict[Session, list[dict[str, Any]]] = {}
        self.seqs: dict[Session, int] = {}  # the last frame number sent, by session
        self.players: dict[Session, list[int]] = {}  # session -> [offset, age, next prompt id]
        self.by_offset: list[set[Session]] = [set() for _ in range(DAY_TICKS)]
        self.tick = 0
        self.hub: ReadHub | None = None

    def ops(self, session: Session) -> list[dict[str, Any]]:
        ops = self.pending.get(session)
        if ops is None:
            ops = self.pending[session] = []
        return ops

    def message(self, session: Session, text: str | bytes) -> None:
        try:
            msg = orjson.loads(text)
            kind, ref = msg["type"], msg.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.ops(session).append({"op": "error", "code": "bad_request", "message": "bad"})
            return
        ops = self.ops(session)
        if kind == "register":
            offset = min(range(DAY_TICKS), key=lambda i: len(self.by_offset[i]))
            self.by_offset[offset].add(session)
            self.players[session] = [offset, 0, 1]
            session.player_id = id(session)
            ops.append({"op": "registered", "player": session.player_id, "token": "t" * 43, "ref": ref})
            ops.append(
                {
                    "op": "welcome",
                    "player": session.player_id,
                    "ref": ref,
                    "snapshot": {
                        "name": msg.get("name"),
                        "alive": True,
                        "age_days": 0,
                        "stats": {"health": 80},
                        "money": 0,
                        "npcs": [{"id": 1, "name": "Mom", "role": "mother", "closeness": 80, "alive": True}],
                        "prompts": [],
                        "actions": ["study", "play"],
                        "feed": [],
                    },
                }
            )
        elif kind == "ping":
            ops.append({"op": "pong", "ref": ref})
        elif kind == "answer":
            ops.append({"op": "ack", "ref": ref})
            ops.append({"op": "prompt_closed", "id": msg.get("prompt"), "choice": msg.get("choice"), "by": "player"})
        elif kind == "say":
            ops.append({"op": "ack", "ref": ref})
            ops.append({"op": "npc_say", "npc": msg.get("npc"), "text": "I hear you.", "ref": ref})
        else:
            ops.append({"op": "ack", "ref": ref})

    def step(self) -> None:
        self.tick += 1
        tick = self.tick
        for session in self.by_offset[tick % DAY_TICKS]:
            player = self.players[session]
            player[1] += 1
            ops = self.ops(session)
            ops.append({"op": "state", "age_days": player[1]})
            if self.rng.random() < 1 / 30:
                ops.append(
                    {
                        "op": "prompt",
                        "id": player[2],
                        "title": "A choice",
                        "text": "Pick.",
                        "choices": [{"key": "a", "label": "A"}, {"key": "b", "label": "B"}],
                        "expires_tick": tick + 200,
                    }
                )
                player[2] += 1
        for session, ops in self.pending.items():
            if ops:
                seq = self.seqs[session] = self.seqs.get(session, 0) + 1
                session.send_frame(orjson.dumps({"type": "frame", "seq": seq, "tick": tick, "ops": ops}))
        self.pending.clear()

    def forget(self, session: Session) -> None:
        player = self.players.pop(session, None)
        if player is not None:
            self.by_offset[player[0]].discard(session)
        self.pending.pop(session, None)
        self.seqs.pop(session, None)

    async def tick_loop(self) -> None:
        deadline = trio.current_time()
        while True:
            self.step()
            deadline += 1 / TICK_HZ
            await trio.sleep_until(deadline)

    async def handle(self, stream: trio.SocketStream) -> None:
        conn = WsConnection(stream, max_message_bytes=4096)
        session = None
        try:
            request = await conn.handshake()
            if request is None:
                return
            await conn.accept()
            session = Session(conn, "?", max_frames=64, max_bytes=262144, rate=1e9, burst=10**9)
            async with trio.open_nursery() as nursery:
                # The writer runs only while frames wait (as in the server);
                # when it closes the connection it cancels this nursery.
                session.start_writing(nursery)
                if self.hub is None:
                    await self.read_task(session)
                else:
                    await self.read_from_hub(session, self.hub)
                nursery.cancel_scope.deadline = trio.current_time() + 2
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the peer went away; the finally below cleans up
        finally:
            if session is not None:
                session.release_socket()
                self.forget(session)
            await trio.aclose_forcefully(stream)

    async def read_task(self, session: Session) -> None:
        while True:
            try:
                message = await session.conn.receive()
            except ConnectionDone:
                session.finish()
                return
            self.message(session, message)

    async def read_from_hub(self, session: Session, hub: ReadHub) -> None:
        conn = session.conn
        fd = conn.fd
        assert fd is not None  # noqa: S101 - plain TCP only
        ended = trio.Event()

        def readable() -> None:
            if session.state == "dead":
                hub.remove(fd)  # its task is being cancelled
                return
            if not conn.read_nowait():
                return
            while True:
                try:
                    message = conn.next_message()
                except ConnectionDone:
                    session.finish()
                    hub.remove(fd)
                    ended.set()
                    return
                if message is None:
                    return
                self.message(session, message)

        hub.add(fd, readable)
        try:
            await ended.wait()
        finally:
            hub.remove(fd)


async def main() -> None:
    import gc

    from baolife.app import GC_THRESHOLDS

    if "--no-direct-write" in sys.argv:
        # A/B of the send path: every frame through the connection's writer task.
        import baolife.net.session as session_module

        session_module._socket_fd = lambda stream: None

    gc.set_threshold(*GC_THRESHOLDS)
    bind = os.environ.get("BAOLIFE_WS_BIND", "127.0.0.1:0")
    host, port = bind.rsplit(":", 1)
    bare = Bare()
    if "--reader-tasks" not in sys.argv:
        bare.hub = ReadHub()
    listeners = await trio.open_tcp_listeners(int(port), host=host)
    actual = listeners[0].socket.getsockname()[1]
    sys.stdout.write(orjson.dumps({"event": "started", "ws": f"{host}:{actual}", "http": f"{host}:0"}).decode() + "\n")
    sys.stdout.flush()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bare.tick_loop)
            if bare.hub is not None:
                await nursery.start(bare.hub.run)
            nursery.start_soon(trio.serve_listeners, bare.handle, listeners)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    trio.run(main)
