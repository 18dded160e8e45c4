"""Issue 13's reconnect storm: one worker restarted (SIGTERM, start again,
no drain at the edge first) under many players; every player must be back
within 30 s with no error but the documented `busy` and rate answers.

A figure to run on purpose, not part of the suite: the module takes about
a minute and a half at 10,000 players on two cores (most of it registering
the crowd), which the suite's ten minutes cannot spare. Run it with
``CI=true BL_CLUSTER_STORM_PLAYERS=10000 .venv/bin/pytest tests/cluster/test_storm.py -s``
(root). One process here cannot raise its open-files limit past 20,000 and
one HAProxy holds two per player (about 9,900 players), so this cluster has
two edges (``scripts/cluster up --edges 2``: the same configuration and hash
on the player id) and the players are spread over both, one client process
per edge."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from tests.cluster.harness import Cluster, Crowd, cluster_for_module, record, wait_for

PLAYERS = int(os.environ.get("BL_CLUSTER_STORM_PLAYERS", "0"))

pytestmark = [
    pytest.mark.skipif(
        PLAYERS <= 0, reason="a figure run on purpose: set BL_CLUSTER_STORM_PLAYERS (minutes to register the crowd)"
    ),
    pytest.mark.timeout(1200),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with cluster_for_module(3, edges=2) as made:
        yield made


def routed_to(cluster: Cluster, edge: str, player: int) -> str:
    """The worker edge ``edge`` sends a WebSocket of ``player`` to (the
    edge's X-Baolife-Worker header on the 101; no login follows)."""
    context = ssl.create_default_context(cafile=str(cluster.ca))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws?player={player} HTTP/1.1\r\nHost: {edge}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
    with (
        socket.create_connection((edge, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=edge) as tls,
    ):
        tls.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = tls.recv(4096)
            if not chunk:
                break
            head += chunk
    lines = head.decode(errors="replace").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101"), lines[0]
    return next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("x-baolife-worker:"))


def test_either_edge_sends_a_player_to_the_same_worker(cluster: Cluster) -> None:
    first, second = cluster.edges
    routes = {pid: (routed_to(cluster, first, pid), routed_to(cluster, second, pid)) for pid in range(1, 61)}
    assert all(a == b for a, b in routes.values()), routes
    assert {a for a, _b in routes.values()} == set(cluster.workers)  # the hash spreads them


def test_one_worker_restarted_under_a_crowd(cluster: Cluster) -> None:
    load_before = os.getloadavg()
    players = Crowd(cluster, PLAYERS, ramp=100)
    try:
        wait_for("every player online", lambda: players.report()["online"] == PLAYERS, 60)
        on_w1 = players.report()["workers"].get("w1", 0)
        players.mark()
        load_at = os.getloadavg()
        started = time.monotonic()
        cluster.stop("w1")
        cluster.start("w1")
        # Figures also when not all come back (within 120 s): recorded, then asserted.
        deadline = started + 120
        while (back := players.report()["online"] == PLAYERS) is False and time.monotonic() < deadline:
            time.sleep(0.5)  # polling the clients' state, bounded above
        took = time.monotonic() - started
        report = players.report()
        load_after = os.getloadavg()
    finally:
        players.close()
    record("reconnect storm", players=PLAYERS, edges=len(cluster.edges), on_restarted=on_w1,
           seconds_all_back=round(took, 1), reconnects=report["reconnects"], downtime_ms=report["downtime_ms"],
           login_ms=report["login_ms"], handshake_ms=report["handshake_ms"], tls_ms=report["tls_ms"],
           tls_resumed=report["tls_resumed"], attempts=report["attempts"], errors=report["errors"],
           login_errors=report["login_errors"],
           connect_failures=report["connect_failures"], login_timeouts=report["login_timeouts"],
           online=report["online"], load=[load_before, load_at, load_after])  # fmt: skip
    assert back, f"{report['online']} of {PLAYERS} back after {took:.0f} s"
    assert set(report["errors"]) <= {"busy", "rate_limited"}, report["errors"]
    assert set(report["login_errors"]) <= {"busy", "rate_limited"}, report["login_errors"]
    assert took <= 30, took
