"""How the listener reads, over real sockets: plain TCP through the ReadHub
with no task of the connection's own once it is in (it ends without one:
the peer's close, a drain that cuts it, the listener cancelled from
outside), TLS through a reader task; what a client sends behind a login
waits for the login; a message that breaks the server ends that connection
alone."""

from __future__ import annotations

import contextlib
import gc
import os
import select
import ssl
import types
from typing import Any

import orjson
import pytest
import trio
import trio.testing
import trustme
from structlog.testing import capture_logs
from wsproto.events import CloseConnection, TextMessage

from baolife import protocol as wire
from baolife.app import App
from baolife.config import Settings
from baolife.net.ws import WsConnection
from tests.helpers import Client, RawClient, running_app

# What a connection's own reader task waits in.
_READER_WAIT = WsConnection.receive.__code__


def server_tasks() -> list[str]:
    """The names of the server's network tasks running now (the listener's,
    its connections', the hub's; not the test's clients' nor the game's)."""

    def walk(task: trio.lowlevel.Task) -> list[str]:
        own = [task.name] if task.name.startswith("baolife.net.") else []
        return own + [name for nursery in task.child_nurseries for child in nursery.child_tasks for name in walk(child)]

    return sorted(walk(trio.lowlevel.current_root_task()))


def waiting_readers() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, types.CoroutineType) and o.cr_code is _READER_WAIT)


async def read_frames(raw: RawClient, until: Any) -> list[dict[str, Any]]:
    """The frames ``raw`` receives, until ``until(frames)`` holds."""
    frames: list[dict[str, Any]] = []
    while not until(frames):
        data = await raw.stream.receive_some(65536)
        assert data, "the server closed the connection"
        raw.ws.receive_data(data)
        for event in raw.ws.events():
            if isinstance(event, TextMessage):
                frames.append(orjson.loads(event.data))
            elif isinstance(event, CloseConnection):
                raise AssertionError(f"closed {event.code} {event.reason}")
    return frames


def ops_of(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [op for frame in frames for op in frame["ops"]]


async def read_ops(raw: RawClient, until: Any) -> list[dict[str, Any]]:
    """Ops of the frames ``raw`` receives, until ``until(ops)`` holds."""
    return ops_of(await read_frames(raw, lambda frames: until(ops_of(frames))))


async def registered_raw(port: int, name: str) -> RawClient:
    """A raw client registered as ``name``, its welcome read."""
    status, raw = await RawClient.handshake(port)
    assert status == 101
    await raw.send_text(orjson.dumps({"type": "register", "id": 1, "name": name}).decode())
    await read_ops(raw, lambda ops: any(op["op"] == "welcome" for op in ops))
    return raw


async def read_to_the_end(raw: RawClient) -> None:
    """Read until the server's end of the stream is closed (a FIN, or a
    reset for a connection cut with input unread), then close ours."""
    with contextlib.suppress(trio.BrokenResourceError):
        while await raw.stream.receive_some(65536):
            pass
    await raw.stream.aclose()


async def test_plain_tcp_connections_wait_in_the_hub_without_tasks_of_their_own(settings: Settings) -> None:
    with trio.fail_after(20):
        async with running_app(settings) as app:
            assert app.ws_port is not None and app.ws.hub is not None
            await trio.testing.wait_all_tasks_blocked()
            idle = server_tasks()
            assert "baolife.net.readhub.ReadHub.run" in idle
            async with Client.connect(app.ws_port) as a, Client.connect(app.ws_port) as b:
                await a.register("A")
                await b.register("B")
                for client in (a, b):
                    assert (await client.request("ping"))["op"] == "pong"
                assert app.ws.hub.statistics().registered == 2
                assert waiting_readers() == 0
                # Logged in and waiting: not one task more on the server's side.
                await trio.testing.wait_all_tasks_blocked()
                assert server_tasks() == idle
                assert app.ws.gate.open == 2
            await app.ws.wait_connections(0)
            await trio.testing.wait_all_tasks_blocked()
            assert app.ws.hub.statistics().registered == 0
            assert app.ws.closed == {"closed": 2} and app.ws.gate.open == 0


async def test_a_drain_cuts_a_hosted_connection_that_stays(settings: Settings) -> None:
    with trio.fail_after(20):
        async with running_app(settings) as app:
            assert app.ws_port is not None
            raw = await registered_raw(app.ws_port, "Stayer")
            app.ws.stop_accepting()
            assert await app.ws.drain(0.2) == 1  # it sends nothing and closes nothing: cut
            await app.ws.wait_connections(0)
            await trio.testing.wait_all_tasks_blocked()  # its stream closed after it was forgotten
            assert not app.ws.sessions and app.ws.gate.open == 0
            assert app.ws.closed == {"shutdown": 1}
            assert app.ws.hub is not None and app.ws.hub.statistics().registered == 0
            await read_to_the_end(raw)


async def test_a_listener_cancelled_from_outside_closes_its_hosted_connections(settings: Settings) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            app = App(settings)
            await nursery.start(app.run)
            assert app.ws_port is not None
            raw = await registered_raw(app.ws_port, "Left")
            nursery.cancel_scope.cancel()
        assert not app.ws.sessions and app.ws.gate.open == 0
        await read_to_the_end(raw)


async def test_messages_behind_a_login_in_the_same_write_wait_for_it(settings: Settings) -> None:
    with trio.fail_after(20):
        async with running_app(settings) as app:
            assert app.ws_port is not None
            status, raw = await RawClient.handshake(app.ws_port)
            assert status == 101
            messages = [
                {"type": "register", "id": 1, "name": "Eager"},
                {"type": "act", "id": 2, "action": "nap"},
                {"type": "ping", "id": 3},
            ]
            # One TCP write: the hub reads all three at once and must not hand
            # the last two to the tick loop before the player is attached.
            await raw.stream.send_all(
                b"".join(raw.ws.send(TextMessage(data=orjson.dumps(m).decode())) for m in messages)
            )
            ops = await read_ops(raw, lambda ops: any(op.get("ref") == 3 for op in ops))
            await raw.aclose()
            answered = [(op["op"], op.get("ref")) for op in ops if op.get("ref") is not None]
            assert answered[:2] == [("registered", 1), ("welcome", 1)]
            act = next(op for op in ops if op.get("ref") == 2)
            assert act.get("code") != "unauthenticated"
            assert answered[-1] == ("pong", 3)


async def test_a_message_that_breaks_the_server_ends_that_connection_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse = wire.parse

    def breaking_parse(message: str | bytes) -> wire.Command:
        if "explode" in str(message):
            raise RuntimeError("a bug met by one message")
        return parse(message)

    monkeypatch.setattr(wire, "parse", breaking_parse)
    with trio.fail_after(20), capture_logs() as logs:
        async with running_app(settings) as app:
            assert app.ws_port is not None
            async with Client.connect(app.ws_port) as victim, Client.connect(app.ws_port) as other:
                await victim.register("Victim")
                await other.register("Other")
                await victim.send_raw('{"type": "explode"}')
                await app.ws.wait_connections(1)
                assert app.ws.closed["internal"] == 1
                assert (await other.request("ping"))["op"] == "pong"
    failed = [e for e in logs if e["event"] == "connection_failed"]
    assert len(failed) == 1 and failed[0]["log_level"] == "error"


async def test_tls_connections_are_read_by_their_own_task(settings: Settings, tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with trio.fail_after(20):
        async with running_app(settings.replace(tls_cert=str(cert_file), tls_key=str(key_file))) as app:
            assert app.ws_port is not None
            async with Client.connect(app.ws_port, ssl_context=client_ctx) as client:
                await client.register("Secure")
                assert (await client.request("ping"))["op"] == "pong"
                assert waiting_readers() == 1
                assert app.ws.hub is not None and app.ws.hub.statistics().registered == 0


async def test_a_login_under_way_is_cancelled_when_its_connection_is_dropped(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hosted connection's login runs in a task of its own; the connection
    dropped meanwhile (a slow client, a kick), the end cancels it at once and
    waits for it before the listener forgets the connection (so the tick
    loop's Detach comes after anything the login did)."""
    waiting, cancelled = trio.Event(), trio.Event()

    async def hanging_find_login(token_hash: bytes) -> None:
        waiting.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    with trio.fail_after(20), capture_logs() as logs:
        async with running_app(settings.replace(auth_timeout=60.0)) as app:
            assert app.ws_port is not None
            async with Client.connect(app.ws_port) as first:
                token, _ = await first.register("Twice")
            await app.ws.wait_connections(0)
            monkeypatch.setattr(app.ws.auth.store, "find_login", hanging_find_login)
            status, raw = await RawClient.handshake(app.ws_port)
            assert status == 101
            await raw.send_text(orjson.dumps({"type": "login", "id": 1, "token": token}).decode())
            await waiting.wait()
            (session,) = app.ws.sessions
            session.abort("slow_client: dropped in the test")
            await cancelled.wait()
            await app.ws.wait_connections(0)
            assert app.ws.closed["slow_client"] == 1
            await read_to_the_end(raw)
    assert not [e for e in logs if e["event"] in ("login_busy", "connection_failed")]


def answers(ref: int) -> Any:
    return lambda frames: any(op.get("ref") == ref for op in ops_of(frames))


async def test_a_message_that_arrives_while_a_tick_runs_is_answered_in_that_ticks_frame(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(20):
        async with running_app(settings) as app:
            assert app.ws_port is not None
            status, raw = await RawClient.handshake(app.ws_port)
            assert status == 101
            await raw.send_text(orjson.dumps({"type": "register", "id": 1, "name": "Quick"}).decode())
            await read_frames(raw, answers(1))
            (session,) = app.ws.sessions
            server_fd = session.conn.fd
            assert server_fd is not None
            client_fd = raw.stream.socket.fileno()
            ping = raw.ws.send(TextMessage(data=orjson.dumps({"type": "ping", "id": 2}).decode()))
            during: list[int] = []
            advance = app.world.advance

            def advance_then_ping(tick: int) -> None:
                advance(tick)
                if not during:
                    # The client's ping reaches the server's socket while this tick runs.
                    during.append(tick)
                    os.write(client_fd, ping)
                    assert select.select([server_fd], [], [], 5.0)[0] == [server_fd]

            monkeypatch.setattr(app.world, "advance", advance_then_ping)
            frames = await read_frames(raw, answers(2))
            await raw.aclose()
            (pong,) = [f for f in frames if {"op": "pong", "ref": 2} in f["ops"]]
            assert pong["tick"] == during[0]
