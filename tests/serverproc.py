"""A real ``baolife serve`` in a subprocess, for tests of what only a process
shows: signals, exit codes, systemd notifications, restarts.

The server binds 127.0.0.1 port 0; its ports are read from its ``started``
log line (JSON on stdout), so tests never guess free ports. Every process is
killed on exit from :func:`serve_process` if it is still running.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import trio


class ServerProcess:
    """A running server: its log lines (parsed), ports and exit status."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.ws_port = 0
        self.http_port = 0
        self._changed = trio.Event()
        self.eof = trio.Event()

    async def _read(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                self.raw.append(line)
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    record = None  # not a log line (e.g. a crash on stderr): kept in raw
                if not isinstance(record, dict):
                    continue
                if record.get("event") == "started":
                    self.ws_port = int(record["ws"].rsplit(":", 1)[1])
                    self.http_port = int(record["http"].rsplit(":", 1)[1])
                self.lines.append(record)
            self._changed.set()
            self._changed = trio.Event()
        self.eof.set()
        self._changed.set()

    async def wait_for(self, event: str) -> dict[str, Any]:
        """The first log line whose ``event`` is ``event`` (waits for it)."""
        while True:
            for record in self.lines:
                if record.get("event") == event:
                    return record
            if self.eof.is_set():
                raise AssertionError(f"server exited {self.proc.returncode} before {event!r}: {self.tail()}")
            await self._changed.wait()

    async def exited(self) -> int:
        """Wait for the process to exit and its output to be read; its status."""
        status = await self.proc.wait()
        await self.eof.wait()
        return status

    def tail(self, n: int = 20) -> str:
        return b"\n".join(self.raw[-n:]).decode("utf-8", "replace")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)


def server_env(db: Path, **settings: Any) -> dict[str, str]:
    """The environment of a test server: loopback ports 0, SQLite at ``db``,
    JSON logs, and ``settings`` as ``BAOLIFE_<NAME>`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAOLIFE_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update(
        BAOLIFE_WS_BIND="127.0.0.1:0",
        BAOLIFE_HTTP_BIND="127.0.0.1:0",
        BAOLIFE_DB_URL=f"sqlite:///{db}",
        BAOLIFE_LOG_FORMAT="json",
        BAOLIFE_SEED="7",
    )
    env.update({f"BAOLIFE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@asynccontextmanager
async def serve_process(
    env: Mapping[str, str], cwd: Path, *, nofile: int | None = None, argv: Sequence[str] = ("-m", "baolife", "serve")
) -> AsyncIterator[ServerProcess]:
    """Start ``python -m baolife serve`` (or ``python *argv``: another server
    that prints the same ``started`` line) and wait for its ``started`` line;
    ``nofile``: the child's open-files limit (soft and hard)."""

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = await trio.lowlevel.open_process(
        [sys.executable, *argv],
        env=dict(env),
        cwd=str(cwd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=limit if nofile is not None else None,  # noqa: PLW1509 - only setrlimit, before exec
    )
    server = ServerProcess(proc)
    try:
        async with trio.open_nursery() as nursery:
            assert proc.stdout is not None
            nursery.start_soon(server._read, proc.stdout)
            await server.wait_for("started")
            try:
                yield server
            finally:
                if proc.returncode is None:
                    proc.kill()
    finally:
        if proc.returncode is None:
            proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()
