"""Protocol v1 over real loopback WebSockets against a running server.

Most tests use the tiny deterministic pack (tests/data/mini: a prompt every
day, an action that kills) so each error code can be reached on purpose.
Every frame read is checked by the Client (one per tick, seq without gaps,
no empty frames).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request

from baolife import content as content_pkg
from baolife.config import Settings
from baolife.content.schema import Content
from tests.helpers import Client, handshake_status, running_app

MINI = Path(__file__).parent.parent / "data" / "mini"


@pytest.fixture(scope="module")
def mini() -> Content:
    return content_pkg.load(MINI)


async def test_a_life_through_every_message_type(settings: Settings, mini: Content) -> None:
    with trio.fail_after(30):
        async with running_app(settings, content=mini) as app, Client.connect(app.ws_port) as c:
            token, welcome = await c.register("Ana Test")
            assert welcome["snapshot"]["name"] == "Ana Test"
            assert c.frames[-1]["seq"] == 1
            assert (await c.request("ping"))["op"] == "pong"

            prompt = await c.op("prompt")
            error = await c.request("answer", prompt=prompt["id"], choice="zzz")
            assert (error["op"], error["code"]) == ("error", "invalid_choice")
            error = await c.request("answer", prompt=prompt["id"] + 1000, choice="a")
            assert error["code"] == "not_found"
            ref = await c.send("answer", prompt=prompt["id"], choice="a")
            assert await c.answer_to(ref) == {"op": "ack", "ref": ref}
            closed = await c.op("prompt_closed", id=prompt["id"])
            assert (closed["choice"], closed["by"]) == ("a", "player")

            assert (await c.request("act", action="fly"))["code"] == "not_found"
            assert (await c.request("act", action="vote"))["code"] == "not_allowed"
            assert (await c.request("act", action="nap"))["op"] == "ack"

            mother = welcome["snapshot"]["npcs"][0]["id"]
            assert (await c.request("say", npc=999, text="hello"))["code"] == "not_found"
            ref = await c.send("say", npc=mother, text="Hello")
            assert await c.answer_to(ref) == {"op": "ack", "ref": ref}
            reply = await c.op("npc_say", ref=ref)
            assert reply["npc"] == mother and reply["text"] == "Hello Ana."

            assert (await c.request("new_life"))["code"] == "not_allowed"
            assert (await c.request("act", action="die_now"))["op"] == "ack"
            died = await c.op("died")
            assert died["cause"] == "a test"
            assert (await c.request("act", action="nap"))["code"] == "not_allowed"
            again = await c.request("new_life")
            assert again["op"] == "welcome" and again["snapshot"]["life"] == 2

            ref = await c.send("logout")
            assert (await c.op("bye"))["reason"] == "logout"
            assert await c.closed() == 1000

        # The token logs in again; a wrong token does not.
        async with running_app(settings, content=mini) as app:
            async with Client.connect(app.ws_port) as c:
                assert (await c.request("login", token="wrong"))["code"] == "invalid_token"  # noqa: S106
                welcome = await c.request("login", token=token)
                assert welcome["op"] == "welcome" and welcome["snapshot"]["life"] == 2
                assert (await c.request("login", token=token))["code"] == "not_allowed"
            async with Client.connect(app.ws_port) as c:
                resumed = await c.request("resume", token=token, last_seq=3)
                assert resumed["op"] == "welcome" and c.frames[-1]["seq"] == 1


async def test_a_ping_before_login_is_unauthenticated(settings: Settings, mini: Content) -> None:
    # PROTOCOL.md's contract; before issue 14 a ping was answered pong.
    with trio.fail_after(20):
        async with running_app(settings, content=mini) as app, Client.connect(app.ws_port) as c:
            error = await c.request("ping")
            assert (error["op"], error["code"]) == ("error", "unauthenticated") and c.frames[-1]["seq"] == 0
            await c.register()
            assert (await c.request("ping"))["op"] == "pong"


async def test_before_login_only_login_messages_work(settings: Settings, mini: Content) -> None:
    # PROTOCOL.md: every type but register, login and resume, ping and logout
    # included, gets unauthenticated until one of those succeeds.
    with trio.fail_after(20):
        async with running_app(settings, content=mini) as app, Client.connect(app.ws_port) as c:
            for kind, fields in [
                ("ping", {}),
                ("logout", {}),
                ("act", {"action": "nap"}),
                ("answer", {"prompt": 1, "choice": "a"}),
                ("say", {"npc": 1, "text": "hi"}),
                ("new_life", {}),
                ("speed", {"x": 2}),
                ("story", {}),
                ("talks", {"npc": 1}),
                ("lives", {}),
            ]:
                error = await c.request(kind, **fields)
                assert error["code"] == "unauthenticated", kind
                assert c.frames[-1]["seq"] == 0
            await c.send_raw("{not json")
            assert (await c.op("error"))["code"] == "bad_request"
            await c.send_raw(b'{"type": "ping"}')
            error = await c.op("error")
            assert error["code"] == "bad_request" and "binary" in error["message"]
            assert (await c.request("jump"))["code"] == "unknown_type"
            error = await c.request("register", name=17)
            assert error["code"] == "bad_request" and "name" in error["message"]
            # The connection is still usable after all that, and logged in
            # the same messages work.
            token, _ = await c.register()
            assert token
            assert (await c.request("ping"))["op"] == "pong"
            assert (await c.request("login", token=token))["code"] == "not_allowed"


async def test_a_second_login_replaces_the_first_session(settings: Settings, mini: Content) -> None:
    with trio.fail_after(20):
        async with running_app(settings, content=mini) as app, Client.connect(app.ws_port) as first:
            token, _ = await first.register()
            async with Client.connect(app.ws_port) as second:
                assert (await second.request("login", token=token))["op"] == "welcome"
                assert (await first.op("bye"))["reason"] == "replaced"
                assert await first.closed() == 4000
                assert (await second.request("act", action="nap"))["op"] == "ack"


async def test_login_deadline_closes_with_1008(settings: Settings, mini: Content) -> None:
    with trio.fail_after(20):
        async with running_app(settings.replace(login_timeout=0.5), content=mini) as app:
            async with Client.connect(app.ws_port) as c:
                assert await c.closed() == 1008


async def test_idle_players_get_bye_idle_and_4001(settings: Settings, mini: Content) -> None:
    with trio.fail_after(20):
        async with running_app(settings.replace(idle_timeout=1.0), content=mini) as app:
            async with Client.connect(app.ws_port) as c:
                await c.register()
                assert (await c.op("bye"))["reason"] == "idle"
                assert await c.closed() == 4001


async def test_oversized_message_closes_with_1009(settings: Settings, mini: Content) -> None:
    with trio.fail_after(20):
        async with running_app(settings, content=mini) as app, Client.connect(app.ws_port) as c:
            await c.register()
            await c.send_raw('{"type": "ping", "pad": "' + "x" * 4100 + '"}')
            assert await c.closed() == 1009


async def test_a_message_of_exactly_the_limit_is_accepted(settings: Settings, mini: Content) -> None:
    with trio.fail_after(20):
        async with running_app(settings, content=mini) as app, Client.connect(app.ws_port) as c:
            await c.register()
            head, tail = '{"type": "ping", "id": 5, "pad": "', '"}'
            await c.send_raw(head + "x" * (4096 - len(head) - len(tail)) + tail)
            assert (await c.op("pong"))["ref"] == 5


async def _raw_connect(port: int) -> tuple[trio.SocketStream, WSConnection]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host="127.0.0.1", target="/ws")))
    while True:
        ws.receive_data(await stream.receive_some(65536))
        if any(isinstance(e, AcceptConnection) for e in ws.events()):
            return stream, ws


async def test_invalid_utf8_fails_the_connection_with_1007(settings: Settings, mini: Content) -> None:
    with trio.fail_after(20):
        async with running_app(settings, content=mini) as app:
            assert app.ws_port is not None
            stream, ws = await _raw_connect(app.ws_port)
            payload = b'{"type": "ping", "x": "\xc3\x28"}'  # \xc3\x28 is not UTF-8
            mask = b"\x01\x02\x03\x04"
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            await stream.send_all(bytes((0x81, 0x80 | len(payload))) + mask + masked)
            codes = []
            while not codes:
                data = await stream.receive_some(65536)
                assert data, "closed without a close frame"
                ws.receive_data(data)
                codes = [e.code for e in ws.events() if isinstance(e, CloseConnection)]
            assert codes == [1007]
            await stream.aclose()


async def test_rate_limit_drops_then_closes_abusers(settings: Settings, mini: Content) -> None:
    fast = settings.replace(msg_rate=2.0, msg_burst=5, rate_strikes=30)
    with trio.fail_after(20):
        async with running_app(fast, content=mini) as app, Client.connect(app.ws_port) as c:
            # Not logged in: a ping taken is answered unauthenticated, one
            # dropped rate_limited (the limit comes first).
            for _ in range(10):
                await c.send("ping")
            codes = []
            while len(codes) < 10:
                op = await c.op()
                if op["op"] == "error":
                    codes.append(op["code"])
            assert codes.count("unauthenticated") == 5 and codes.count("rate_limited") == 5
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(60):
                    await c.send("ping")
            assert info.value.reason is not None and info.value.reason.code == 1008


async def test_handshakes_over_the_connection_limit_are_refused(settings: Settings, mini: Content) -> None:
    with trio.fail_after(20):
        async with running_app(settings.replace(max_connections=2), content=mini) as app:
            assert app.ws_port is not None
            async with Client.connect(app.ws_port), Client.connect(app.ws_port):
                assert await handshake_status(app.ws_port, "/ws") == 503
            assert await handshake_status(app.ws_port, "/elsewhere") == 404
            assert await handshake_status(app.ws_port, "/ws?player=5") == 101


async def test_http_health_readiness_and_metrics(settings: Settings, mini: Content) -> None:
    async def get(port: int, path: str) -> tuple[int, bytes]:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
        await stream.aclose()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    with trio.fail_after(20):
        async with running_app(settings, content=mini) as app:
            assert app.http_port is not None
            await app.loop.advanced.wait()
            assert (await get(app.http_port, "/healthz"))[0] == 200
            status, body = await get(app.http_port, "/readyz")
            assert status == 200 and b'"ready":true' in body
            async with Client.connect(app.ws_port) as c:
                await c.register()
                await c.request("jump")
                status, body = await get(app.http_port, "/metrics")
            assert status == 200
            assert b"baolife_players_online 1.0" in body
            assert b'baolife_errors_sent_total{code="unknown_type"} 1.0' in body
            assert b"baolife_tick_duration_seconds_bucket" in body
            assert (await get(app.http_port, "/nope"))[0] == 404
            app.draining = True
            status, body = await get(app.http_port, "/readyz")
            assert status == 503 and b"draining" in body
