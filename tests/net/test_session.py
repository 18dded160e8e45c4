"""The send path: direct non-blocking writes first, the writer task for the
rest (started when something waits, gone when nothing does), and frames
always in order across the switch."""

from __future__ import annotations

import socket
import struct

import orjson
import trio
import trio.testing
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from baolife.net.session import Session
from baolife.net.ws import WsConnection, text_frame
from tests.helpers import connected_pair


def read_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """Split unmasked server frames; (payloads, leftover bytes)."""
    out = []
    while len(data) >= 2:
        n = data[1] & 0x7F
        head = 2
        if n == 126:
            if len(data) < 4:
                break
            n, head = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            if len(data) < 10:
                break
            n, head = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < head + n:
            break
        assert data[0] == 0x81
        out.append(data[head : head + n])
        data = data[head + n :]
    return out, data


async def test_frames_stay_in_order_when_the_socket_fills_and_drains() -> None:
    count = 3000
    with trio.fail_after(30):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        client = trio.socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await client.connect(("127.0.0.1", port))
        server_stream = await listeners[0].accept()
        session = Session(
            WsConnection(server_stream, max_message_bytes=4096),
            "127.0.0.1",
            max_frames=count,
            max_bytes=1 << 30,
            rate=10,
            burst=10,
        )
        async with trio.open_nursery() as nursery:
            session.start_writing(nursery)
            assert not nursery.child_tasks  # no writer while nothing waits
            pad = "x" * 1000
            for seq in range(count):
                assert session.send_frame(orjson.dumps({"seq": seq, "pad": pad}))
            # The client has not read yet: the socket filled, the rest queued.
            assert 0 < session.direct_writes < count
            assert session.queued_frames > 0
            assert len(nursery.child_tasks) == 1  # the writer, started by the first frame queued
            received: list[int] = []
            buffer = b""
            while len(received) < count:
                buffer += await client.recv(65536)
                payloads, buffer = read_frames(buffer)
                received.extend(orjson.loads(p)["seq"] for p in payloads)
            assert received == list(range(count))
            # Once drained, frames go straight to the socket again.
            await trio.testing.wait_all_tasks_blocked()  # the writer has sent all and ended
            assert session.queued_frames == 0
            assert not nursery.child_tasks
            before = session.direct_writes
            assert session.send_frame(b'{"seq": "last"}')
            assert session.direct_writes == before + 1
            payloads, _ = read_frames(await client.recv(65536))
            assert payloads == [b'{"seq": "last"}']
            assert not nursery.child_tasks
        session.stop_writing()
        session.release_socket()
        client.close()
        await server_stream.aclose()
        for listener in listeners:
            await listener.aclose()


def test_text_frames_of_every_header_size_read_back_whole() -> None:
    # The three header forms (7-bit, 16-bit, 64-bit length), at their edges,
    # read by an independent WebSocket client parser.
    client = Connection(ConnectionType.CLIENT)
    sizes = [0, 1, 125, 126, 127, 65535, 65536]
    payloads = [("é" * size)[: size // 2] + "x" * (size - 2 * (size // 2)) for size in sizes]
    assert [len(p.encode()) for p in payloads] == sizes
    client.receive_data(b"".join(text_frame(p.encode()) for p in payloads))
    received = []
    for event in client.events():
        assert isinstance(event, TextMessage) and event.message_finished
        received.append(event.data)
    assert received == payloads


async def test_a_peer_that_reset_the_connection_is_dropped_at_the_next_frame() -> None:
    with trio.fail_after(10):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        client = trio.socket.socket()
        await client.connect(("127.0.0.1", port))
        server_stream = await listeners[0].accept()
        await listeners[0].aclose()
        session = Session(
            WsConnection(server_stream, max_message_bytes=4096),
            "127.0.0.1",
            max_frames=8,
            max_bytes=1 << 20,
            rate=10,
            burst=10,
        )
        assert session.send_frame(b'{"seq": 1}')
        # SO_LINGER 0: the close sends RST, which loopback delivers at once.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        assert not session.send_frame(b'{"seq": 2}')
        assert session.state == "dead" and session.abort_reason.startswith("lost: ")
        assert (session.frames_sent, session.direct_writes, session.queued_frames) == (1, 1, 0)
        assert not session.send_frame(b'{"seq": 3}')  # nothing more is tried
        assert session.bytes_sent == len(text_frame(b'{"seq": 1}'))
        session.release_socket()
        await server_stream.aclose()


async def test_a_close_reply_queued_while_our_close_waits_is_sent_then_nothing_more() -> None:
    # Our close and the peer's crossed: the reader queues its reply to the
    # peer's close behind ours while the writer waits for the peer's answer.
    # That reply goes out after our close frame; nothing goes out after it.
    with trio.fail_after(10):
        conn, client_stream, _client = await connected_pair()
        server_stream = conn.stream
        session = Session(conn, "127.0.0.1", max_frames=8, max_bytes=1 << 20, rate=10, burst=10)
        reply = b"\x88\x02\x03\xe8"  # a close frame, 1000
        async with trio.open_nursery() as nursery:
            session.start_writing(nursery)
            session.close(1001, "going")
            await trio.testing.wait_all_tasks_blocked()  # our close sent; the writer waits for the answer
            session.send_control(reply)
            conn.peer_closed.set()
        # The writer ended the connection's nursery once done.
        session.send_control(reply)  # sealed: not queued, not sent
        session.stop_writing()
        session.release_socket()
        await server_stream.aclose()
        received = b""
        while chunk := await client_stream.receive_some(4096):
            received += chunk
        ours = b"\x88" + bytes((2 + len("going"),)) + struct.pack("!H", 1001) + b"going"
        assert received == ours + reply
        await client_stream.aclose()


class _Host:
    """A host as HubConnection is, in the test's nursery: counts what it is told."""

    def __init__(self, session: Session, nursery: trio.Nursery) -> None:
        self.session = session
        self.nursery = nursery
        self.writers = 0
        self.ended = 0
        self.results: list[bool] = []

    def start_writer(self) -> None:
        self.writers += 1
        self.nursery.start_soon(self._write)

    async def _write(self) -> None:
        self.results.append(await self.session.write_hosted())

    def end(self) -> None:
        self.ended += 1


async def test_a_hosted_writer_runs_while_frames_wait_and_an_abort_cancels_it_and_ends_the_connection() -> None:
    """Through a host: a writer when something is queued, gone when the
    queue is empty (the host is not told to end), and an abort while it is
    blocked on a full stream cancels it and tells the host to end, once."""
    a, b = trio.testing.memory_stream_pair()  # no descriptor: every frame goes through the writer
    session = Session(WsConnection(a, max_message_bytes=4096), "t", max_frames=10, max_bytes=1 << 20, rate=10, burst=10)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            host = _Host(session, nursery)
            session.start_hosted(host)
            assert session.send_frame(b'{"n":1}')
            assert host.writers == 1 and session.writing
            assert await b.receive_some(100) == text_frame(b'{"n":1}')
            await trio.testing.wait_all_tasks_blocked()
            assert host.results == [False] and not session.writing and host.ended == 0
            blocked = trio.Event()

            async def never_drain() -> None:
                blocked.set()
                await trio.sleep_forever()

            a.send_stream.send_all_hook = never_drain  # type: ignore[attr-defined]  # waits as on a full socket
            assert session.send_frame(b'{"n":2}')
            await blocked.wait()
            assert host.writers == 2 and session.writing
            session.abort("slow_client: test")
            await trio.testing.wait_all_tasks_blocked()
            assert host.results == [False, True] and host.ended == 1 and not session.writing
            session.abort("again")
            assert host.ended == 1
