"""The read path of WsConnection over real TCP sockets: the descriptor is read
directly (wait_readable, os.read), with trio's checkpoints, and a socket
closed or reset under a waiting reader ends the connection with 1006."""

from __future__ import annotations

import gc
import socket
import struct

import h11
import pytest
import trio
from wsproto.events import TextMessage

from baolife.net.ws import ConnectionDone
from tests.helpers import connected_pair


def reachable(root: object, depth: int) -> list[object]:
    """Objects reachable from ``root`` in at most ``depth`` references."""
    seen, frontier = {id(root)}, [root]
    out = []
    for _ in range(depth):
        nxt = []
        for obj in frontier:
            for ref in gc.get_referents(obj):
                if id(ref) not in seen:
                    seen.add(id(ref))
                    out.append(ref)
                    nxt.append(ref)
        frontier = nxt
    return out


async def test_an_open_connection_keeps_no_http_handshake_state() -> None:
    with trio.fail_after(10):
        server, stream, client = await connected_pair()
        # Every open connection carries what it holds for its whole life: the
        # handshake's HTTP machinery is not part of it once accepted.
        assert not [o for o in reachable(server, 4) if isinstance(o, h11.Connection)]
        await stream.send_all(client.send(TextMessage(data="still works")))
        assert await server.receive() == "still works"
        await stream.aclose()
        await server.stream.aclose()


async def test_messages_arrive_whole_however_the_bytes_are_cut() -> None:
    with trio.fail_after(10):
        server, stream, client = await connected_pair()
        data = b"".join(client.send(TextMessage(data=f'{{"type":"ping","id":{i}}}')) for i in range(20))
        async with trio.open_nursery() as nursery:

            async def trickle() -> None:
                for i in range(0, len(data), 7):  # frames split across many reads
                    await stream.send_all(data[i : i + 7])
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(trickle)
            got = [await server.receive() for _ in range(20)]
        assert got == [f'{{"type":"ping","id":{i}}}' for i in range(20)]
        await stream.aclose()
        await server.stream.aclose()


async def test_reading_never_keeps_other_tasks_waiting() -> None:
    with trio.fail_after(10):
        server, stream, client = await connected_pair()
        # 64 messages of 3,000 bytes: many reads, each finding data at once.
        data = b"".join(client.send(TextMessage(data="x" * 3000)) for _ in range(64))
        turns = 0

        async def other() -> None:
            nonlocal turns
            while True:
                turns += 1
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, data)
            await trio.testing.wait_all_tasks_blocked()  # the kernel holds what it can take
            nursery.start_soon(other)
            for _ in range(64):
                assert await server.receive() == "x" * 3000
            nursery.cancel_scope.cancel()
        # Each read (at most 16 KiB: about 12 here) is a checkpoint; a reader
        # that never waited would not have let `other` run at all.
        assert turns >= 8
        await stream.aclose()
        await server.stream.aclose()


async def test_a_socket_closed_under_a_waiting_reader_ends_with_1006() -> None:
    with trio.fail_after(10):
        server, stream, _client = await connected_pair()
        async with trio.open_nursery() as nursery:

            async def close_soon() -> None:
                await trio.testing.wait_all_tasks_blocked()
                await server.stream.aclose()  # another task closes the stream

            nursery.start_soon(close_soon)
            with pytest.raises(ConnectionDone) as done:
                await server.receive()
        assert done.value.code == 1006
        with pytest.raises(ConnectionDone):  # and stays done, without touching the closed descriptor
            await server.receive()
        await stream.aclose()


async def test_a_reset_by_the_peer_ends_with_1006() -> None:
    with trio.fail_after(10):
        server, stream, _client = await connected_pair()
        # SO_LINGER 0: close sends RST instead of FIN.
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()
        with pytest.raises(ConnectionDone) as done:
            await server.receive()
        assert done.value.code == 1006
        await server.stream.aclose()
