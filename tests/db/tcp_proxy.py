"""A TCP proxy for tests that cuts and restores the path to a server, and
can hold it some way off.

It listens on 127.0.0.1 (a free port; both can be chosen) and forwards each
connection to the target. While the path is *cut* it behaves like one of two
outages:

- ``"reset"``: every open connection is dropped, and new ones are accepted
  and closed at once (a server restart, a refused port);
- ``"blackhole"``: nothing is forwarded either way and nothing is closed
  (a partition: packets vanish, clients hang until their own timeouts).

A cut may be for every client or for the clients of one address (``peer``):
the cluster of scripts/cluster runs one proxy in front of its database and
partitions one worker host from it while the others go on.
:meth:`set_latency` delays every chunk by half a round trip each way, keeping
the order (the kernel here has no netem). :attr:`round_trips` counts the
client's turns to speak (a client sending after the server answered it):
the round trips a call costs, whatever its driver does.

:meth:`stall_replies_after` lets ``n`` more bytes through from the server and
then holds the rest, to leave a client with half a result. :meth:`restore`
ends any cut or stall (held bytes then flow again, as after a healed
partition). Stop it by cancelling the nursery it runs in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from baolife.db.mysql_dialect import MysqlOptions

CHUNK = 65536
# Chunks in flight per direction while a latency is set (the delay line's
# bound: a sender further ahead waits, as behind a full TCP window).
IN_FLIGHT = 64
MODES = ("reset", "blackhole")


@attrs.define(eq=False)
class _Pair:
    scope: trio.CancelScope
    peer: str
    client_spoke_last: bool = False


class TcpProxy:
    """See the module docstring."""

    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1", listen_port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.listen = (listen_host, listen_port)
        self.port = 0
        self.mode: str | None = None
        self.peer_modes: dict[str, str] = {}
        self.delay = 0.0  # added one way, seconds
        self.accepted = 0
        self.broken = 0
        self.round_trips = 0
        self.bytes_up = 0  # client to server
        self._pairs: set[_Pair] = set()
        self._reply_budget: int | None = None
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.listen[1], host=self.listen[0])
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve, listeners)
            task_status.started(self.port)

    def url(self, database_url: str) -> str:
        """``database_url`` pointed at this proxy instead of the target."""
        host, port = self.target
        return database_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/", 1)

    def cut(self, mode: str, peer: str | None = None) -> None:
        """Start an outage: ``"reset"`` or ``"blackhole"``, for every client
        or only for those connecting from address ``peer``."""
        if mode not in MODES:
            raise ValueError(mode)
        if peer is None:
            self.mode = mode
        else:
            self.peer_modes[peer] = mode
        if mode == "reset":
            for pair in list(self._pairs):
                if peer is None or pair.peer == peer:
                    pair.scope.cancel()
        self._wake()

    def set_latency(self, round_trip: float) -> None:
        """Hold every chunk ``round_trip / 2`` seconds in each direction."""
        if not 0 <= round_trip <= 60:
            raise ValueError("round trip must be between 0 and 60 seconds")
        self.delay = round_trip / 2

    def stall_replies_after(self, nbytes: int) -> None:
        """Forward ``nbytes`` more bytes from the server, then hold the rest."""
        self._reply_budget = nbytes
        self._wake()

    def restore(self, peer: str | None = None) -> None:
        """End the outage or stall: every one, or only ``peer``'s cut."""
        if peer is None:
            self.mode = None
            self.peer_modes.clear()
            self._reply_budget = None
        else:
            self.peer_modes.pop(peer, None)
        self._wake()

    @property
    def connections(self) -> int:
        return len(self._pairs)

    def connections_of(self, peer: str) -> int:
        return sum(1 for pair in self._pairs if pair.peer == peer)

    def mode_for(self, peer: str) -> str | None:
        """The outage a client at ``peer`` sees now, if any."""
        return self.mode or self.peer_modes.get(peer)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _serve(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        try:
            peer = str(client.socket.getpeername()[0])
        except OSError:
            peer = ""
        try:
            if self.mode_for(peer) == "reset":
                return
            await self._wait_flowing(peer)
            if self.mode_for(peer) == "reset":
                return
            try:
                server = await trio.open_tcp_stream(*self.target)
            except OSError:
                return
            with trio.CancelScope() as scope:
                pair = _Pair(scope, peer)
                self._pairs.add(pair)
                try:
                    async with server, trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, server, False, nursery.cancel_scope, pair)
                        nursery.start_soon(self._pump, server, client, True, nursery.cancel_scope, pair)
                finally:
                    self._pairs.discard(pair)
        finally:
            await trio.aclose_forcefully(client)

    async def _wait_flowing(self, peer: str) -> None:
        while self.mode_for(peer) == "blackhole":
            await self._changed.wait()

    async def _pump(
        self, src: trio.SocketStream, dst: trio.SocketStream, replies: bool, scope: trio.CancelScope, pair: _Pair
    ) -> None:
        peer = pair.peer
        # A reader stamps each chunk with the time it may leave, a writer
        # waits for that time: with no latency set the stamp is "now" and a
        # chunk passes straight through.
        send, receive = trio.open_memory_channel[tuple[float, bytes]](IN_FLIGHT)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, receive, dst, replies, peer)
                async with send:
                    while True:
                        await self._wait_flowing(peer)
                        data = await src.receive_some(CHUNK)
                        if not data:
                            break
                        if not replies:
                            self.bytes_up += len(data)
                            if not pair.client_spoke_last:
                                self.round_trips += 1
                        pair.client_spoke_last = not replies
                        await send.send((trio.current_time() + self.delay, data))
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            self.broken += 1  # the other side hung up mid-send
        # One side ended: end the pair (both sockets close).
        scope.cancel()

    async def _write(
        self, receive: trio.MemoryReceiveChannel[tuple[float, bytes]], dst: trio.SocketStream, replies: bool, peer: str
    ) -> None:
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                while data:
                    await self._wait_flowing(peer)
                    if replies and self._reply_budget is not None:
                        while self._reply_budget == 0:
                            await self._changed.wait()
                        if self._reply_budget is not None:
                            part, data = data[: self._reply_budget], data[self._reply_budget :]
                            self._reply_budget -= len(part)
                            await dst.send_all(part)
                            continue
                    await dst.send_all(data)
                    data = b""


@asynccontextmanager
async def proxied(database_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the server of ``database_url``, stopped on exit."""
    o = MysqlOptions.from_url(database_url)
    async with trio.open_nursery() as nursery:
        proxy = TcpProxy(o.host, o.port)
        await nursery.start(proxy.run)
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()
