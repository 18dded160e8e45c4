"""Short text frames are read without wsproto (baolife.net.shortframes)
while wsproto is between frames (which FrameWalk follows from the frame
headers); everything else is wsproto's. A client's bytes, cut
anywhere, read back as the same messages, control answers and close codes."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Ping, Request, TextMessage

from baolife.net.shortframes import short_texts
from baolife.net.ws import ConnectionDone, WsConnection

LIMIT = 300


async def accepted(limit: int = LIMIT) -> tuple[WsConnection, Connection, list[bytes]]:
    """A server connection past its handshake (over a memory stream), the
    client's protocol, and the control frames the server hands back."""
    server_stream, client_stream = trio.testing.memory_stream_pair()
    controls: list[bytes] = []
    conn = WsConnection(server_stream, max_message_bytes=limit, control=controls.append)
    client = WSConnection(ConnectionType.CLIENT)
    await client_stream.send_all(client.send(Request(host="127.0.0.1", target="/ws")))
    assert await conn.handshake() is not None
    await conn.accept()
    client.receive_data(await client_stream.receive_some(4096))
    assert isinstance(next(client.events()), AcceptConnection)
    assert isinstance(client.connection, Connection)
    return conn, client.connection, controls


def between_frames(ws: Connection) -> bool:
    """wsproto's own (private) state: no part of a frame held, no message in pieces."""
    proto = ws._proto
    decoder = proto._frame_decoder
    return not decoder.buffer.buffer and decoder.header is None and proto._message_decoder.opcode is None


def feed(conn: WsConnection, data: bytes, cuts: list[int]) -> tuple[list[str | bytes], int | None]:
    """Feed ``data`` in pieces cut at ``cuts``; the messages taken, and the
    close code the connection ended with (None while it is open). After
    every piece, the connection's walk of the frames says what wsproto's
    state says, and wsproto is kept only while it holds part of a frame."""
    out: list[str | bytes] = []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        if a < b:
            conn._feed(data[a:b])
            if conn._done is None:
                ws = conn._ws
                assert (conn._walk is None) == (ws is None or between_frames(ws))
                assert ws is None or conn._walk is not None  # let go whenever it holds nothing
        try:
            while (message := conn.next_message()) is not None:
                out.append(message)
        except ConnectionDone as done:
            return out, done.code
    return out, None


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=160)
messages = st.lists(
    st.one_of(
        texts.map(lambda t: ("text", t)),
        st.binary(max_size=40).map(lambda b: ("binary", b)),
        st.binary(max_size=20).map(lambda b: ("ping", b)),
        st.tuples(st.lists(texts, min_size=2, max_size=3), st.booleans()).map(lambda v: ("pieces", v)),
    ),
    max_size=12,
)


def encode(client: Connection, items: list[tuple[str, object]]) -> tuple[bytes, list[str | bytes], int]:
    """The client's bytes, the messages they hold (those within the limit:
    the first over it closes with 1009), and how many pings."""
    data = b""
    expected: list[str | bytes] = []
    pings = 0
    for kind, value in items:
        if kind == "text":
            assert isinstance(value, str)
            data += client.send(TextMessage(data=value))
            expected.append(value)
        elif kind == "binary":
            assert isinstance(value, bytes)
            data += client.send(BytesMessage(data=value))
            expected.append(value)
        elif kind == "ping":
            assert isinstance(value, bytes)
            data += client.send(Ping(payload=value))
            pings += 1
        else:
            assert isinstance(value, tuple)
            parts, ping_between = value
            for i, part in enumerate(parts):
                if i and ping_between:  # a control frame may come between the pieces
                    data += client.send(Ping(payload=b"p"))
                    pings += 1
                data += client.send(TextMessage(data=part, message_finished=i == len(parts) - 1))
            expected.append("".join(parts))
    return data, expected, pings


@settings(max_examples=300, deadline=None)
@given(items=messages, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8))
async def test_messages_cut_anywhere_read_back_whole_and_in_order(
    items: list[tuple[str, object]], cuts: list[int]
) -> None:
    conn, client, controls = await accepted()
    data, expected, pings = encode(client, items)
    got, code = feed(conn, data, cuts)
    sizes = [len(m.encode()) if isinstance(m, str) else len(m) for m in expected]
    over = next((i for i, n in enumerate(sizes) if n > LIMIT), None)
    if over is None:
        assert (got, code) == (expected, None)
        assert len(controls) == pings  # a pong for each ping, wherever it was cut
    else:
        # Everything before the first message over the limit, then 1009.
        assert (got, code) == (expected[:over], 1009)


async def test_bad_utf8_in_a_short_frame_fails_with_1007_after_the_good_ones() -> None:
    conn, client, controls = await accepted()
    good = client.send(TextMessage(data='{"type":"ping"}'))
    # A masked text frame with a zero mask: its payload is the bytes as sent.
    bad = bytes((0x81, 0x80 | 2, 0, 0, 0, 0)) + b"\xc3\x28"
    assert feed(conn, good + bad + good, []) == (['{"type":"ping"}'], 1007)
    assert controls and controls[-1][:1] == b"\x88"  # our close frame, 1007


async def test_an_unmasked_frame_from_a_client_fails_with_1002() -> None:
    conn, _client, _controls = await accepted()
    assert feed(conn, bytes((0x81, 2)) + b"hi", []) == ([], 1002)


async def test_a_close_after_short_frames_ends_after_them() -> None:
    conn, client, controls = await accepted()
    data = client.send(TextMessage(data="a")) + client.send(TextMessage(data="b"))
    data += client.send(CloseConnection(code=1000))
    assert feed(conn, data, []) == (["a", "b"], 1000)
    assert len(controls) == 1  # the reply to the client's close


def test_a_short_frame_is_read_by_its_mask_and_length() -> None:
    texts, used = short_texts(bytes((0x81, 0x80 | 1, 1, 2, 3, 4, ord("x") ^ 1)), LIMIT)
    assert (texts, used) == (["x"], 7)
