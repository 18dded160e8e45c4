"""systemd integration: the notify protocol (against a fake NOTIFY_SOCKET,
unit-level and with a real ``baolife serve``), and the unit files
(``systemd-analyze verify`` where it is installed, plus the rules that tie
them to the server's settings)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import trio
from serverproc import serve_process, server_env

from baolife.config import SETTINGS_DOC, Settings, load
from baolife.systemd import Notifier

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"
SHIPPED_EXEC = "/opt/baolife/.venv/bin/baolife"


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket bound in the test's folder, like systemd's."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield path, sock
    finally:
        sock.close()


def test_notifier_sends_each_message_as_one_datagram(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    notifier = Notifier(path)
    assert notifier.ready("up\nnow")
    assert sock.recv(4096) == b"READY=1\nSTATUS=up now"  # a newline in a value would start a field
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()
    assert not notifier.notify("STATUS=closed")


def test_notifier_reaches_an_abstract_socket() -> None:
    name = f"baolife-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier.status("fine")
        assert sock.recv(4096) == b"STATUS=fine"
        notifier.close()
    finally:
        sock.close()


def test_watchdog_pings_every_quarter_interval(notify_socket: tuple[str, socket.socket]) -> None:
    path, sock = notify_socket
    sock.setblocking(False)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    pinged_at = []
    for tick in range(101):  # 10 s of ticks at 10 Hz; WatchdogSec=2s: a ping every 0.5 s
        notifier.watchdog(tick / 10)
        with contextlib.suppress(BlockingIOError):  # no datagram: no ping this tick
            assert sock.recv(64) == b"WATCHDOG=1"
            pinged_at.append(tick)
    assert pinged_at == list(range(0, 101, 5))
    assert notifier.failed == 0
    notifier.close()


def test_watchdog_is_off_for_another_pid_or_without_socket(notify_socket: tuple[str, socket.socket]) -> None:
    path, _ = notify_socket
    other = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, pid=2)
    assert other.watchdog_every == 0
    ours = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "2"}, pid=2)
    assert ours.watchdog_every == 0.25
    nothing = Notifier.from_environ({"WATCHDOG_USEC": "1000000"})
    assert not nothing.enabled and nothing.watchdog_every == 0 and not nothing.ready()
    other.close()
    ours.close()


def test_a_failed_send_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert not notifier.ready()
    assert notifier.failed == 1 and "FileNotFoundError" in notifier.last_error
    notifier.close()


async def test_serve_notifies_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    """The real server under a fake systemd: READY=1 once it listens,
    WATCHDOG=1 while ticks run, STOPPING=1 on SIGTERM, exit 0."""
    path = str(tmp_path / "notify")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await sock.bind(path)
    env = server_env(tmp_path / "baolife.db", summary_interval=1)
    env.update(NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")  # WatchdogSec=0.4s: a ping every 0.1 s
    received: list[tuple[float, str]] = []

    async def next_message(kind: str) -> str:
        while True:
            data = (await sock.recv(4096)).decode()
            received.append((trio.current_time(), data))
            if kind in data.split("\n"):
                return data
            if kind == "STATUS" and data.startswith("STATUS="):
                return data

    with sock, trio.fail_after(30):
        async with serve_process(env, tmp_path) as server:
            ready = await next_message("READY=1")
            assert "STATUS=0 players online" in ready
            first = trio.current_time()
            for _ in range(5):
                await next_message("WATCHDOG=1")
            pings = [t for t, data in received if data == "WATCHDOG=1"]
            # Rate-limited to about a quarter interval (0.1 s), and never silent for half of it (0.2 s).
            assert 0.25 <= pings[-1] - first <= 1.5
            # Never silent for a whole WatchdogSec (systemd would kill); 0.2 s is the aim, the rest is slack.
            assert max(b - a for a, b in zip(pings, pings[1:], strict=False)) < 0.3
            status = await next_message("STATUS")  # the summary line's status, every summary_interval
            assert "players online" in status
            server.terminate()
            stopping = await next_message("STOPPING=1")
            assert "draining" in stopping
            assert await server.exited() == 0


# ----------------------------------------------------------------- unit files


def unit_text(name: str) -> str:
    return (UNITS / name).read_text()


def directives(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit_text(name).splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.parametrize("name", ["baolife.service", "baolife@.service"])
def test_service_units_have_the_operations_contract(name: str) -> None:
    d = directives(name)
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["on-failure"] and d["User"] == ["baolife"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "baolife",
    }.items():
        assert d[key] == [value], key
    assert int(d["LimitNOFILE"][0]) >= 4 * Settings.defaults().max_connections
    # The drain must fit: TimeoutStopSec above the default shutdown_timeout, with room to exit.
    stop = float(d["TimeoutStopSec"][0].rstrip("s"))
    assert stop >= Settings.defaults().shutdown_timeout + 10
    # The watchdog: the server pings from the tick loop every quarter WatchdogSec.
    assert float(d["WatchdogSec"][0].rstrip("s")) >= 4 / Settings.defaults().tick_hz
    # SQLite, the default store, lives in the StateDirectory, the only writable place.
    assert "BAOLIFE_DB_URL=sqlite:////var/lib/baolife/baolife.db" in d["Environment"]
    assert "BAOLIFE_DB_MIGRATE=false" in d["Environment"]
    assert "baolife-migrate.service" in " ".join(d["After"])


def test_template_gives_each_worker_its_own_ports() -> None:
    env = dict(e.split("=", 1) for e in directives("baolife@.service")["Environment"])
    ws = {env["BAOLIFE_WS_BIND"].replace("%i", str(n)) for n in range(10)}
    http = {env["BAOLIFE_HTTP_BIND"].replace("%i", str(n)) for n in range(10)}
    assert len(ws) == len(http) == 10 and not ws & http
    settings = load({k: v.replace("%i", "3") for k, v in env.items() if k.startswith("BAOLIFE_")})
    assert settings.ws_bind == ("127.0.0.1", 8703) and settings.http_bind == ("127.0.0.1", 8803)
    assert not settings.db_migrate


def test_migrate_unit_is_a_oneshot_running_migrate() -> None:
    d = directives("baolife-migrate.service")
    assert d["Type"] == ["oneshot"]
    assert d["ExecStart"] == [f"{SHIPPED_EXEC} migrate"]


def test_env_example_names_only_real_settings_with_valid_values() -> None:
    known = {name for name, _, _ in SETTINGS_DOC}
    values = {}
    for line in unit_text("baolife.env.example").splitlines():
        match = re.fullmatch(r"#?(BAOLIFE_[A-Z0-9_]+)=(.*)", line)
        if match:
            assert match.group(1) in known, match.group(1)
            values[match.group(1)] = match.group(2)
    assert len(values) >= 10
    for name, value in values.items():
        load({name: value})  # each example value is accepted as it stands


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """verify, with ExecStart pointed at a binary that exists here, must say
    nothing at all; on the units as shipped it may only miss that binary."""
    exe = str(Path(sys.executable).with_name("baolife"))  # the venv's console script
    assert Path(exe).exists(), exe
    for path in UNITS.glob("*.service"):
        (tmp_path / path.name).write_text(path.read_text().replace(SHIPPED_EXEC, exe))
    (tmp_path / "baolife@2.service").symlink_to(tmp_path / "baolife@.service")
    units = [str(tmp_path / n) for n in ("baolife.service", "baolife@2.service", "baolife-migrate.service")]
    done = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stderr

    shipped = [str(UNITS / n) for n in ("baolife.service", "baolife-migrate.service")]
    done = subprocess.run(["systemd-analyze", "verify", *shipped], capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    unavoidable = re.compile(rf"^baolife(-migrate)?\.service: Command {re.escape(SHIPPED_EXEC)} is not executable: ")
    assert lines and all(unavoidable.match(line) for line in lines), lines


async def test_a_failed_start_is_one_structured_line_exit_1_and_never_ready(
    tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    """What Restart=on-failure and the journal need from a crash: status 1,
    the traceback as data, and no READY=1 before it."""
    path, sock = notify_socket
    sock.setblocking(False)
    env = server_env(tmp_path / "new.db", db_migrate="false")  # a fresh database, not migrated: refused
    env["NOTIFY_SOCKET"] = path
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-m", "baolife", "serve"], env=env, capture_stdout=True, capture_stderr=True, check=False
        )
    assert done.returncode == 1, done.stderr.decode()
    crash = orjson.loads(done.stdout.splitlines()[-1])
    assert crash["event"] == "crashed" and crash["level"] == "error"
    assert "baolife migrate" in str(crash["exception"]) and crash["exception"][0]["frames"]
    with pytest.raises(BlockingIOError):  # the process has exited: anything it sent is queued by now
        sock.recv(4096)
