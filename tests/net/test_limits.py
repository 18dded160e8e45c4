"""Limits against hostile or broken clients: per-IP connections and
registrations, trusted proxies, dead peers, clients that never read."""

from __future__ import annotations

import ipaddress

import orjson
import trio

from baolife.config import Settings
from baolife.net.proxy import client_address
from tests.helpers import Client, RawClient, handshake_status, running_app


async def test_connections_per_address_are_limited(settings: Settings) -> None:
    with trio.fail_after(20):
        async with running_app(settings.replace(conn_per_ip=2)) as app:
            assert app.ws_port is not None
            async with Client.connect(app.ws_port):
                async with Client.connect(app.ws_port):
                    assert await handshake_status(app.ws_port) == 429
                # One closed: once the server has seen it go, there is room again.
                await app.ws.wait_connections(1)
                assert await handshake_status(app.ws_port) == 101
            assert app.ws.refused["per_ip"] == 1


def test_forwarded_addresses_count_only_behind_a_trusted_proxy() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    xff = [(b"X-Forwarded-For", b"203.0.113.9, 10.1.1.1")]
    assert client_address("10.0.0.5", xff, proxies) == "203.0.113.9"
    assert client_address("198.51.100.7", xff, proxies) == "198.51.100.7"  # not a proxy: header ignored
    assert client_address("10.0.0.5", xff, ()) == "10.0.0.5"  # no proxies configured
    assert client_address("10.0.0.5", [(b"x-forwarded-for", b"not-an-ip")], proxies) == "10.0.0.5"
    # A client cannot hide behind a spoofed left-most entry: the right-most untrusted hop counts.
    spoofed = [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.9")]
    assert client_address("10.0.0.5", spoofed, proxies) == "203.0.113.9"


async def test_registrations_per_address_per_hour_are_limited(settings: Settings) -> None:
    with trio.fail_after(20):
        async with running_app(settings.replace(register_per_ip_hour=2)) as app:
            tokens = []
            for _ in range(2):
                async with Client.connect(app.ws_port) as c:
                    tokens.append((await c.register())[0])
            async with Client.connect(app.ws_port) as c:
                refused = await c.request("register", name="One Too Many")
                assert refused["code"] == "rate_limited"
                # Logging in is not registering.
                assert (await c.request("login", token=tokens[0]))["op"] == "welcome"


async def test_a_peer_that_does_not_answer_pings_is_dropped(settings: Settings) -> None:
    with trio.fail_after(20):
        async with running_app(settings.replace(ping_interval=0.5)) as app:
            assert app.ws_port is not None
            status, silent = await RawClient.handshake(app.ws_port)
            assert status == 101
            async with Client.connect(app.ws_port) as alive:  # trio-websocket answers pings
                await alive.register()
                # The silent peer gets a ping, does not answer, and is cut.
                while not await silent.stream.receive_some(65536) == b"":
                    pass
                assert app.ws.closed["no_pong"] == 1
                assert (await alive.request("ping"))["op"] == "pong"
            await silent.aclose()


async def test_clients_that_never_read_are_dropped_without_slowing_anyone(settings: Settings) -> None:
    s = settings.replace(msg_rate=100_000, msg_burst=100_000, outbound_frames=32, outbound_bytes=32768)
    stalled_count = 3
    with trio.fail_after(60):
        async with running_app(s) as app:
            assert app.ws_port is not None
            async with Client.connect(app.ws_port) as good:
                await good.register()
                stalled = []
                for _ in range(stalled_count):
                    status, raw = await RawClient.handshake(app.ws_port, rcvbuf=4096)
                    assert status == 101
                    stalled.append(raw)
                peak_queued = 0
                rtts = []

                async def flood(raw: RawClient) -> None:
                    # Many pings per tick make big frames; this client never reads them.
                    ping = orjson.dumps({"type": "ping", "pad": "x" * 200}).decode()
                    try:
                        for _ in range(200_000):
                            await raw.send_text(ping)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return

                async with trio.open_nursery() as nursery:
                    for raw in stalled:
                        nursery.start_soon(flood, raw)
                    while app.ws.closed["slow_client"] < stalled_count:
                        peak_queued = max(peak_queued, app.ws.statistics().queued_bytes)
                        started = trio.current_time()
                        assert (await good.request("ping"))["op"] == "pong"
                        rtts.append(trio.current_time() - started)
                    nursery.cancel_scope.cancel()
                for raw in stalled:
                    await raw.aclose()
                # Memory stayed bounded by the per-connection queue limits...
                assert peak_queued <= stalled_count * s.outbound_bytes + 4096
                # ...the good player kept playing: no error, answers within a few ticks.
                assert not [op for op in good.seen if op["op"] == "error"]
                assert len(rtts) >= 3 and sorted(rtts)[len(rtts) // 2] < 0.1
            assert app.ws.closed["slow_client"] == stalled_count
