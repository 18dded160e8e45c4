"""A TCP proxy for tests that cuts and restores the path to a server.

It listens on 127.0.0.1 (a free port) and forwards each connection to the
target. While the path is *cut* it behaves like one of two outages:

- ``"reset"``: every open connection is dropped, and new ones are accepted
  and closed at once (a server restart, a refused port);
- ``"blackhole"``: nothing is forwarded either way and nothing is closed
  (a partition: packets vanish, clients hang until their own timeouts).

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


@attrs.define(eq=False)
class _Pair:
    scope: trio.CancelScope


class TcpProxy:
    """See the module docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode: str | None = None
        self.accepted = 0
        self.broken = 0
        self._pairs: set[_Pair] = set()
        self._reply_budget: int | None = None
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve, listeners)
            task_status.started(self.port)

    def url(self, database_url: str) -> str:
        """``database_url`` pointed at this proxy instead of the target."""
        host, port = self.target
        return database_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/", 1)

    def cut(self, mode: str) -> None:
        """Start an outage: ``"reset"`` or ``"blackhole"``."""
        if mode not in ("reset", "blackhole"):
            raise ValueError(mode)
        self.mode = mode
        if mode == "reset":
            for pair in list(self._pairs):
                pair.scope.cancel()
        self._wake()

    def stall_replies_after(self, nbytes: int) -> None:
        """Forward ``nbytes`` more bytes from the server, then hold the rest."""
        self._reply_budget = nbytes
        self._wake()

    def restore(self) -> None:
        """End the outage or stall."""
        self.mode = None
        self._reply_budget = None
        self._wake()

    @property
    def connections(self) -> int:
        return len(self._pairs)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _serve(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        try:
            if self.mode == "reset":
                return
            await self._wait_flowing()
            if self.mode == "reset":
                return
            try:
                server = await trio.open_tcp_stream(*self.target)
            except OSError:
                return
            with trio.CancelScope() as scope:
                pair = _Pair(scope)
                self._pairs.add(pair)
                try:
                    async with server, trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, server, False, nursery.cancel_scope)
                        nursery.start_soon(self._pump, server, client, True, nursery.cancel_scope)
                finally:
                    self._pairs.discard(pair)
        finally:
            await trio.aclose_forcefully(client)

    async def _wait_flowing(self) -> None:
        while self.mode == "blackhole":
            await self._changed.wait()

    async def _pump(
        self, src: trio.SocketStream, dst: trio.SocketStream, replies: bool, pair: trio.CancelScope
    ) -> None:
        try:
            while True:
                await self._wait_flowing()
                data = await src.receive_some(CHUNK)
                if not data:
                    break
                while data:
                    await self._wait_flowing()
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
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.broken += 1  # the other side hung up mid-send
        # One side ended: end the pair (both sockets close).
        pair.cancel()


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
