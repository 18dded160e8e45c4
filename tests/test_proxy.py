"""The front proxy of deploy/haproxy/haproxy.cfg, for real: Debian's HAProxy
on loopback terminates TLS in front of two workers, and a player always
lands on the same worker, whether the id comes in the query string or a
cookie. The test runs the shipped config with only its addresses and
certificate path replaced."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from helpers import Client, closing_transport, running_app
from trio_websocket import open_websocket_url

from baolife.admin.tokens import token_line
from baolife.app import App
from baolife.config import Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
PLAYERS = 12
ADMIN_TOKEN = "bla_proxy-test-operator-token-0123456789abcdef"  # noqa: S105 - the test's own


def need(command: str) -> str:
    """The path of ``command``; skip without it, but never under CI=true
    (scripts/test installs it there)."""
    path = shutil.which(command) or (f"/usr/sbin/{command}" if os.path.exists(f"/usr/sbin/{command}") else None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{command} is not installed (scripts/deb-ensure installs it); mandatory with CI=true")
        pytest.skip(f"{command} is not installed and could not be installed (scripts/deb-ensure)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 as HAProxy wants it (chain and key in one
    PEM) and a client context that trusts exactly it."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    both = folder / "haproxy.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    return both, ssl.create_default_context(cafile=str(cert))


def proxy_config(pem: Path, tls_port: int, plain_port: int, workers: list[App]) -> str:
    """The shipped config with loopback addresses, our certificate and our
    workers' ports; every replaced line must be there exactly once."""
    text = CONFIG.read_text()
    w1, w2 = workers
    ws1, ws2, http1, http2 = w1.ws_port, w2.ws_port, w1.http_port, w2.http_port
    replace = {
        "    log /dev/log local0\n": "    log stderr format raw local0 notice\n",
        "    maxconn 100000\n": "    maxconn 2000\n",  # within this machine's file descriptor limit
        "    bind :443 ssl crt /etc/haproxy/certs/baolife.pem alpn http/1.1\n":
            f"    bind 127.0.0.1:{tls_port} ssl crt {pem} alpn http/1.1\n",
        "    bind :80\n": f"    bind 127.0.0.1:{plain_port}\n",
        "    server w1 127.0.0.1:8701 check port 8801\n": f"    server w1 127.0.0.1:{ws1} check port {http1}\n",
        "    server w2 127.0.0.1:8702 check port 8802\n": f"    server w2 127.0.0.1:{ws2} check port {http2}\n",
        "    server w1 127.0.0.1:8801 check\n": f"    server w1 127.0.0.1:{w1.http_port} check\n",
        # These workers share a SQLite file (one host): the proxy says so.
        "    http-request set-header X-BaoLife-Store mysql\n": "    http-request set-header X-BaoLife-Store sqlite\n",
        "    server w2 127.0.0.1:8802 check\n": f"    server w2 127.0.0.1:{w2.http_port} check\n",
    }  # fmt: skip
    for old, new in replace.items():
        assert text.count(old) == 1, f"deploy/haproxy/haproxy.cfg changed: {old.strip()!r}"
        text = text.replace(old, new)
    return text


@asynccontextmanager
async def haproxy(config: str, folder: Path, tls_port: int) -> AsyncIterator[trio.Process]:
    path = folder / "haproxy.cfg"
    path.write_text(config)
    exe = need("haproxy")
    check = await trio.run_process(
        [exe, "-c", "-f", str(path)], capture_stdout=True, stderr=subprocess.STDOUT, check=False
    )
    assert check.returncode == 0, check.stdout.decode()
    log = (folder / "haproxy.log").open("wb")
    proc = await trio.lowlevel.open_process([exe, "-db", "-f", str(path)], stdout=log, stderr=log)
    try:
        with trio.fail_after(10):
            while True:  # until it listens
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", tls_port)
                except OSError:
                    await trio.sleep(0.05)
                    continue
                await stream.aclose()
                break
        yield proc
    finally:
        proc.terminate()
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


def worker_of(pid: int, workers: list[App]) -> int:
    """Which worker holds ``pid``'s session now (exactly one must)."""
    holders = [i for i, app in enumerate(workers) if pid in app.loop.by_player]
    assert len(holders) == 1, f"player {pid} is online on workers {holders}"
    return holders[0]


async def login_via_proxy(
    port: int, ctx: ssl.SSLContext, token: str, pid: int, workers: list[App], *, cookie: bool
) -> int:
    """Log ``pid`` in through the proxy; the worker it landed on."""
    url = f"wss://127.0.0.1:{port}/ws" + ("" if cookie else f"?player={pid}")
    headers = [("Cookie", f"theme=dark; baolife_player={pid}")] if cookie else None
    connecting = open_websocket_url(url, ssl_context=ctx, extra_headers=headers, message_queue_size=1000)
    async with closing_transport(connecting) as ws:
        client = Client(ws)
        welcome = await client.request("login", token=token)
        assert welcome["op"] == "welcome" and welcome["player"] == pid
        landed = worker_of(pid, workers)
        await client.send("logout")
        assert (await client.op("bye"))["reason"] == "logout"
        assert await client.closed() == 1000
        return landed


async def test_haproxy_sends_a_player_to_the_same_worker(settings: Settings, tmp_path: Path) -> None:
    need("haproxy")
    pem, ctx = self_signed(tmp_path)
    tls_port, plain_port = free_port(), free_port()
    # Two workers on one database: the bus in it tells them of handoffs.
    shared = settings.replace(
        trusted_proxies="127.0.0.1", tick_hz=20.0, bus_url="db", admin_tokens=token_line("ops", "operator", ADMIN_TOKEN)
    )
    with trio.fail_after(90):
        async with running_app(shared) as w1, running_app(shared) as w2:
            workers = [w1, w2]
            config = proxy_config(pem, tls_port, plain_port, workers)
            async with haproxy(config, tmp_path, tls_port):
                # New players (no id yet) are spread over the workers.
                players: list[tuple[int, str]] = []
                registered_on = set()
                for i in range(PLAYERS):
                    url = f"wss://127.0.0.1:{tls_port}/ws"
                    connecting = open_websocket_url(url, ssl_context=ctx, message_queue_size=1000)
                    async with closing_transport(connecting) as ws:
                        token, welcome = await Client(ws).register(f"Proxied {i}")
                        registered_on.add(worker_of(welcome["player"], workers))
                        players.append((welcome["player"], token))
                assert registered_on == {0, 1}

                # A returning player lands on one worker, every time, by query or cookie.
                home = {}
                for pid, token in players:
                    landed = {
                        await login_via_proxy(tls_port, ctx, token, pid, workers, cookie=False),
                        await login_via_proxy(tls_port, ctx, token, pid, workers, cookie=True),
                        await login_via_proxy(tls_port, ctx, token, pid, workers, cookie=False),
                    }
                    assert len(landed) == 1, f"player {pid} went to workers {landed}"
                    home[pid] = landed.pop()
                assert set(home.values()) == {0, 1}, "every player hashed to one worker: the test proves nothing"

                # A worker that stopped accepting (a restart) while the checks
                # still have it up: its players' connections go at once to the
                # next worker on the ring (option redispatch), not three more
                # tries at it a second apart and a 503.
                moved = [(pid, token) for pid, token in players if home[pid] == 0][:2]
                w1.ws.stop_accepting()
                await trio.testing.wait_all_tasks_blocked()
                for pid, token in moved:
                    started = trio.current_time()
                    url = f"wss://127.0.0.1:{tls_port}/ws?player={pid}"
                    connecting = open_websocket_url(url, ssl_context=ctx, message_queue_size=1000)
                    async with closing_transport(connecting) as ws:
                        opened = trio.current_time() - started
                        client = Client(ws)
                        assert (await client.request("login", token=token))["op"] == "welcome"
                        assert worker_of(pid, workers) == 1
                        await client.send("logout")
                        assert (await client.op("bye"))["reason"] == "logout"
                    assert opened < 0.9, f"the handshake through the proxy took {opened:.2f} s"

                # TLS only; the web client through the proxy; metrics and probes are not public.
                async with httpx.AsyncClient(verify=ctx) as http:
                    page = await http.get(f"https://127.0.0.1:{tls_port}/")
                    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
                    for private in ("/metrics", "/readyz"):
                        assert (await http.get(f"https://127.0.0.1:{tls_port}{private}")).status_code == 404
                    # The operators' console is on (a token is set) but only on the workers' own ports.
                    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
                    for private in ("/admin/", "/admin/api/whoami", "/admin"):
                        got = await http.get(f"https://127.0.0.1:{tls_port}{private}", headers=admin)
                        assert got.status_code == 404, private
                    direct = await http.get(f"http://127.0.0.1:{w1.http_port}/admin/api/whoami", headers=admin)
                    assert direct.json() == {"name": "ops", "role": "operator"}
                    plain = await http.get(f"http://127.0.0.1:{plain_port}/")
                    assert plain.status_code == 301
                    assert plain.headers["location"].startswith("https://")
                    metrics = await http.get(f"http://127.0.0.1:{w1.http_port}/metrics")
                    assert "baolife_connections_accepted_total" in metrics.text
