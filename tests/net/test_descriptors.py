"""Running out of file descriptors (issue 18, item 4): the server fits its
connection limit to the open-files limit at start, answers new WebSocket
clients 503 at once rather than leaving them hanging, keeps /healthz,
/readyz and /metrics answering, and logs JSON lines, not tracebacks."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
import trio

from baolife.net.accept import FD_RESERVE, HANDSHAKE_ROOM, MAX_REFUSING
from tests.faults import record
from tests.helpers import Client, RawClient
from tests.serverproc import serve_process, server_env

pytestmark = pytest.mark.faults

NOFILE = 400
HTTP_MAX = 16


async def test_out_of_descriptors_new_clients_get_503_at_once_and_probes_still_answer(tmp_path: Path) -> None:
    env = server_env(
        tmp_path / "life.db", conn_per_ip=10_000, register_per_ip_hour=10_000, http_max_connections=HTTP_MAX
    )
    fits = NOFILE - HANDSHAKE_ROOM - HTTP_MAX - FD_RESERVE - 2 * MAX_REFUSING
    with trio.fail_after(120):
        async with serve_process(env, tmp_path, nofile=NOFILE) as server:
            limit = await server.wait_for("descriptor_limit")
            assert (limit["limit"], limit["max_connections"], limit["configured"]) == (NOFILE, fits, 10_000)
            held: list[RawClient] = []
            statuses: list[int] = []
            async with trio.open_nursery() as nursery:
                players: list[Client] = []

                async def join() -> None:
                    players.append(await nursery.start(_player, server.ws_port))

                # At once: one by one, each registration waits for its tick.
                async with trio.open_nursery() as joining:
                    for _ in range(100):
                        joining.start_soon(join)
                assert len(players) == 100

                async def knock() -> None:
                    # Every new client gets an answer within seconds: 101 while there
                    # is room, then 503; none waits for its own timeout.
                    with trio.fail_after(10):
                        status, raw = await RawClient.handshake(server.ws_port)
                    statuses.append(status)
                    if status == 101:
                        held.append(raw)

                async with trio.open_nursery() as knocking:
                    for _ in range(400):
                        knocking.start_soon(knock)
                record(
                    f"out of descriptors (nofile {NOFILE}, 100 players, 400 new clients at once)",
                    max_connections_fitted=limit["max_connections"],
                    admitted=statuses.count(101),
                    refused_503=statuses.count(503),
                    unanswered=400 - len(statuses),
                )
                assert len(statuses) == 400
                assert statuses.count(101) == fits - 100
                assert statuses.count(503) == 400 - (fits - 100)
                async with httpx.AsyncClient(timeout=5) as http:
                    base = f"http://127.0.0.1:{server.http_port}"
                    assert (await http.get(base + "/healthz")).status_code == 200
                    ready = await http.get(base + "/readyz")
                    assert ready.status_code == 503 and "connection limit reached" in ready.json()["problems"]
                    assert b"baolife_connections_refused_total" in (await http.get(base + "/metrics")).content
                for raw in held:
                    await raw.aclose()
                nursery.cancel_scope.cancel()
            server.terminate()
            assert await server.exited() == 0
    # Every line the server wrote is a JSON log line: no plain-text tracebacks.
    for line in server.raw:
        assert isinstance(orjson.loads(line), dict), line


async def _player(port: int, *, task_status: trio.TaskStatus[Client] = trio.TASK_STATUS_IGNORED) -> None:
    """A registered player who stays connected (reading its frames) until cancelled."""
    async with Client.connect(port) as c:
        await c.register()
        task_status.started(c)
        while True:
            await c.frame()
