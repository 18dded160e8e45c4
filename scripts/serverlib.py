"""Shared by the scripts that measure a server process (soak, loadtest):
start it with its JSON log in a file, wait for its ``started`` line, read its
CPU and memory from /proc, stop it with SIGTERM."""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import trio


def loopback_env(folder: str, **settings: Any) -> dict[str, str]:
    """Environment of a measured server: loopback ports 0, SQLite in
    ``folder``, JSON logs, and ``settings`` as ``BAOLIFE_<NAME>`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAOLIFE_")}
    env.update(
        BAOLIFE_WS_BIND="127.0.0.1:0",
        BAOLIFE_HTTP_BIND="127.0.0.1:0",
        BAOLIFE_DB_URL=f"sqlite:///{folder}/server.db",
        BAOLIFE_LOG_FORMAT="json",
    )
    env.update({f"BAOLIFE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class ChildServer:
    def __init__(self, proc: trio.Process, log_path: trio.Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.ws_port = 0
        self.http_port = 0

    async def log_lines(self) -> list[dict[str, Any]]:
        """The JSON lines the server has logged so far."""
        return [orjson.loads(x) for x in (await self.log_path.read_bytes()).splitlines() if x.startswith(b"{")]

    async def stop(self, grace: float = 30.0) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then kill; the exit status."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(grace):
                await self.proc.wait()
        if self.proc.returncode is None:
            self.proc.kill()
        with trio.CancelScope(shield=True):
            return await self.proc.wait()


@asynccontextmanager
async def child_server(command: Sequence[str], env: dict[str, str], folder: str) -> AsyncIterator[ChildServer]:
    """Run ``command`` with its output in ``folder``/server.log until it logs
    ``started``; always stopped on exit."""
    log_path = trio.Path(folder) / "server.log"
    log = await trio.open_file(log_path, "wb")
    proc = await trio.lowlevel.open_process(
        list(command), env=env, stdout=log.wrapped.fileno(), stderr=subprocess.STDOUT
    )
    server = ChildServer(proc, log_path)
    try:
        with trio.fail_after(30):
            while not server.ws_port:
                await trio.sleep(0.05)  # the log file is the only signal that it listens
                if proc.returncode is not None:
                    raise RuntimeError(f"server exited {proc.returncode}: {(await log_path.read_text())[-2000:]}")
                for line in await server.log_lines():
                    if line.get("event") == "started":
                        server.ws_port = int(re.sub(r".*:", "", line["ws"]))
                        server.http_port = int(re.sub(r".*:", "", line["http"]))
        yield server
    finally:
        await server.stop()
        await log.aclose()


async def fetch_metrics(port: int) -> str:
    """The body of the server's ``/metrics`` (HTTP/1.1, the server closes after it)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    await stream.aclose()
    return data.decode().partition("\r\n\r\n")[2]


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu, int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def machine() -> dict[str, Any]:
    """What a benchmark ran on."""
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or model
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
