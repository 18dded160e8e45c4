"""What an operator sees of a running server: /metrics after real play,
/healthz and /readyz, the log context of connection lines, and client
addresses behind a trusted front proxy."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import structlog
import trio
from helpers import Client, closing_transport, metric_samples, running_app
from trio_websocket import open_websocket_url

from baolife.config import Settings
from baolife.logs import configure_logging


async def get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"http://127.0.0.1:{port}{path}")


async def test_metrics_count_what_players_did(settings: Settings) -> None:
    with trio.fail_after(30):
        async with running_app(settings.replace(msg_burst=3, msg_rate=0.5)) as app:
            assert app.http_port is not None and app.ws_port is not None
            async with Client.connect(app.ws_port) as client:
                await client.register("Counted")
                await client.send_raw("not json")
                for _ in range(4):  # the burst is 3 (register took one): some are dropped for rate
                    await client.send("ping")
                await client.op("error", code="rate_limited")
                got = metric_samples((await get(app.http_port, "/metrics")).content)
    assert got[("baolife_ops_sent_total", (("kind", "registered"),))] == 1
    assert got[("baolife_ops_sent_total", (("kind", "welcome"),))] == 1
    assert got[("baolife_ops_sent_total", (("kind", "error"),))] >= 2
    assert got[("baolife_inbound_messages_total", (("type", "register"),))] == 1
    assert got[("baolife_errors_sent_total", (("code", "bad_request"),))] == 1
    assert got[("baolife_rate_limited_total", (("limit", "messages"),))] >= 1
    assert got[("baolife_rate_limited_total", (("limit", "registrations_per_ip"),))] == 0
    assert got[("baolife_store_seconds_count", (("op", "create_account"),))] == 1
    assert got[("baolife_players_online", ())] == 1
    assert got[("baolife_frames_sent_total", ())] >= 2
    assert got[("baolife_tick_duration_seconds_count", ())] >= 1
    assert got[("baolife_store_up", ())] == 1
    assert ("baolife_ai_cache_hits_total", ()) not in got  # appears once the AI layer reports it
    # Kept by the read hub and the engine, exported too (issue 14).
    assert got[("baolife_read_hub_connections", ())] == 1
    assert got[("baolife_read_hub_callbacks_total", ())] >= 6  # the register, the junk, the pings
    assert got[("baolife_read_hub_failures_total", ())] == 0
    assert got[("baolife_prompts_opened_total", ())] >= got[("baolife_prompts_answered_total", ())] == 0


async def test_health_and_readiness(settings: Settings) -> None:
    with trio.fail_after(30):
        async with running_app(settings.replace(max_connections=1)) as app:
            assert app.http_port is not None and app.ws_port is not None
            health = await get(app.http_port, "/healthz")
            assert health.status_code == 200 and health.json()["ok"] and health.json()["tick"] >= 1
            assert (await get(app.http_port, "/readyz")).json() == {"ready": True, "problems": []}
            async with Client.connect(app.ws_port) as client:
                await client.register("Fills the server")
                full = await get(app.http_port, "/readyz")
                assert full.status_code == 503 and full.json()["problems"] == ["connection limit reached"]
            await app.loop.stop()  # the tick loop stops advancing: not alive within a few seconds
            for _ in range(50):  # polls an HTTP probe, as a supervisor would; at most 10 s
                if (await get(app.http_port, "/healthz")).status_code == 503:
                    break
                await trio.sleep(0.2)
            else:
                pytest.fail("/healthz stayed 200 for 10 s after the tick loop stopped")
            assert "tick loop stalled" in (await get(app.http_port, "/readyz")).json()["problems"]


async def connect_as(port: int, forwarded: str | None) -> Any:
    headers = [("X-Forwarded-For", forwarded)] if forwarded else None
    return closing_transport(open_websocket_url(f"ws://127.0.0.1:{port}/ws", extra_headers=headers))


async def handshake_status(port: int, forwarded: str) -> int:
    """The HTTP status a WebSocket handshake gets (raw, so a refusal leaves
    no half-open client behind)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"X-Forwarded-For: " + forwarded.encode() + b"\r\n\r\n"
        )
        reply = b""
        while b"\r\n" not in reply:
            chunk = await stream.receive_some(4096)
            assert chunk, "closed without an answer"
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize("trusted", [True, False])
async def test_per_ip_limit_sees_the_client_behind_a_trusted_proxy(settings: Settings, trusted: bool) -> None:
    proxies = "127.0.0.1" if trusted else ""
    with trio.fail_after(30):
        async with running_app(settings.replace(conn_per_ip=1, trusted_proxies=proxies)) as app:
            assert app.ws_port is not None
            async with await connect_as(app.ws_port, "203.0.113.9, 198.51.100.1"):
                if trusted:
                    # Another player behind the same proxy is another address...
                    async with await connect_as(app.ws_port, "198.51.100.2"):
                        pass
                # ...but the same one again is over its limit; untrusted, every header is the proxy's.
                again = "198.51.100.1" if trusted else "198.51.100.2"
                assert await handshake_status(app.ws_port, again) == 429


@pytest.fixture
def log_buffer() -> Iterator[io.BytesIO]:
    buffer = io.BytesIO()
    writer = configure_logging("json", "info", buffer)
    try:
        yield buffer
    finally:
        writer.close()
        structlog.reset_defaults()


async def test_connection_lines_carry_session_player_and_tick(settings: Settings, log_buffer: io.BytesIO) -> None:
    with trio.fail_after(30):
        async with running_app(settings.replace(msg_burst=1, msg_rate=0.1, rate_strikes=2)) as app:
            assert app.ws_port is not None
            async with Client.connect(app.ws_port) as client:
                _, welcome = await client.register("Logged")
                for _ in range(3):
                    await client.send("ping")
                assert await client.closed() == 1008  # closed for rate abuse
    lines = [orjson.loads(line) for line in log_buffer.getvalue().splitlines()]
    abuse = next(line for line in lines if line["event"] == "rate_limit_abuse")
    # Bound once in the connection's task; player and tick read when the line was written.
    assert abuse["player"] == welcome["player"] and isinstance(abuse["session"], int)
    assert abuse["tick"] >= 1 and abuse["level"] == "warning"
    # Logged in the connection's own task (the login), which names no session itself.
    registered = next(line for line in lines if line["event"] == "registered")
    assert registered["session"] == abuse["session"]
    closed = next(line for line in lines if line["event"] == "connection_closed")
    assert closed["player"] == welcome["player"] and closed["reason"] == "policy"
    started = next(line for line in lines if line["event"] == "started")
    assert "player" not in started and "session" not in started and "tick" in started
