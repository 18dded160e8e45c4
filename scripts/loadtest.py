"""Load test: N simulated players over real WebSockets against a server process.

Starts the server under test (``--server ours``: ``baolife serve`` with the
SQLite store and the scripted NPC provider, or ``--server bare``: the bare
server of scripts/bench_ceiling.py on the same WebSocket stack, with no game)
pinned to CPU 0 with taskset, pins itself to CPU 1, and runs N players that
each register (or, with ``--lives mixed``, log in to a life of any age that
scripts/seed_lives.py seeded the store with), then ping every ~5 s, answer
every prompt after 1-5 s, act every ~20 s and talk to an NPC every ~2 min,
for ``--duration`` seconds after a ramp of ``--ramp`` players per second,
once every player is welcomed (as the peer's generator measures).

Prints one JSON object: connects and failures, p50/p95/p99/max round trips of
ping->pong and answer->ack, error ops by code, frames per second, the
server's CPU% and peak RSS (from /proc), the generator's own CPU%, and for
``ours`` the tick and collector figures from /metrics, for the whole run
(``server_ticks``) and for the measured window (``server_ticks_measured``).
``--metrics-out FILE`` also keeps the server's whole /metrics text as it
stands when the run ends (pool waits, store calls, NPC replies), and with
the Node generator as it stood at the window's start and end, in
``FILE.start`` and ``FILE.end``.
``--peer colyseus`` then runs the strongest peer (Colyseus 0.18, 50-player
rooms, ../shared/peers/colyseus/run.sh) with the same N in the same sitting
and prints ours over its CPU, peak RSS and p99 ping (``ours_to_peer``).
``--find-limit`` steps N up against both servers and prints, for each, the
largest N whose p95 ping round trip stays within ``--p95-ms``, and the ratio:
``ratio_ours_to_bare`` when both failed at a step; ``_at_most`` when the
bare server never failed (its ceiling is above ``--max-players``);
``_at_least`` against the bare limit or, when bare never failed, against the
open-files limit (also printed), which no server here can pass.

The client is minimal on purpose (one handshake, hand-parsed frames, a zero
masking key, which RFC 6455 allows) so that the generator costs far less per
frame than the server and measures the server, not itself.

One piece: one tool run as one file; the players, the servers it starts and
the report share one run's figures, and what other scripts share lives in
scripts/lib.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import trio
from serverlib import ChildServer, child_server, fetch_metrics, loopback_env, machine, proc_stat

HERE = Path(__file__).resolve().parent
# Ops the generator reacts to; frames without any of them (and without a ref) are only counted.
_INTERESTING = (b'"op":"prompt"', b'"op":"welcome"', b'"op":"error"', b'"op":"npc"', b'"op":"died"', b'"actions"')
ACTIONS = ["study", "play", "exercise", "meditate", "see_doctor", "find_job", "go_out", "work_hard"]


def client_frame(payload: bytes) -> bytes:
    """A masked client text frame with the all-zero key (masking is then free)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, 0x80 | n)) + b"\0\0\0\0" + payload
    return bytes((0x81, 0x80 | 126)) + struct.pack("!H", n) + b"\0\0\0\0" + payload


class LagMeter:
    """How late this process's event loop wakes a task that asks every 10 ms:
    if the generator itself is behind, its round trips say little of the server."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        while True:
            asked = trio.current_time() + 0.01
            await trio.sleep_until(asked)
            self.lags.append(trio.current_time() - asked)


class Stats:
    def __init__(self, expected: int) -> None:
        self.connected = 0
        self.failed = 0
        self.failures: Counter[str] = Counter()
        self.ping_rtt: list[float] = []
        self.answer_rtt: list[float] = []
        self.errors: Counter[str] = Counter()
        self.frames = 0
        self.closed: Counter[int] = Counter()
        self.measuring = False
        self.sent: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.welcomed = 0
        self.expected = expected
        self.all_in = trio.Event()  # every expected player welcomed or failed

    def arrived(self, *, welcomed: bool) -> None:
        """One more player welcomed (or failed to connect)."""
        if welcomed:
            self.welcomed += 1
        else:
            self.failed += 1
        if self.welcomed + self.failed >= self.expected:
            self.all_in.set()

    def percentiles(self, values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
        v = sorted(values)

        def pick(q: float) -> float:
            return round(1000 * v[min(len(v) - 1, int(len(v) * q))], 2)

        return {"n": len(v), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": round(1000 * v[-1], 2)}


class Player:
    """One simulated player on one connection."""

    def __init__(self, index: int, port: int, stats: Stats, rng: random.Random, token: str | None = None) -> None:
        self.index = index
        self.token = token
        self.port = port
        self.stats = stats
        self.rng = rng
        self.stream: trio.SocketStream | None = None
        self.pending: dict[str, tuple[str, float]] = {}
        self.npcs: list[int] = []
        self.actions: list[str] = list(ACTIONS)
        self.ids = 0
        self.welcomed = trio.Event()
        self.alive = True
        self.lock = trio.StrictFIFOLock()  # actions, delayed answers and pongs share the stream

    async def send(self, kind: str, measure: str | None = None, **fields: Any) -> None:
        self.ids += 1
        ref = f"{self.index}.{self.ids}"
        if measure:
            self.pending[ref] = (measure, time.perf_counter())
        if self.stats.measuring:
            self.stats.sent[kind] += 1
        await self.write(client_frame(orjson.dumps({"type": kind, "id": ref, **fields})))

    async def write(self, data: bytes) -> None:
        assert self.stream is not None
        async with self.lock:
            await self.stream.send_all(data)

    async def connect(self) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        key = base64.b64encode(os.urandom(16))
        await stream.send_all(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some(4096)
            if not chunk:
                await stream.aclose()
                raise ConnectionError("closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            await stream.aclose()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        self.stream = stream
        self._buffer = head.split(b"\r\n\r\n", 1)[1]

    async def read(self) -> None:
        assert self.stream is not None
        buffer = self._buffer
        stats = self.stats
        try:
            while True:
                while True:
                    if len(buffer) < 2:
                        break
                    opcode = buffer[0] & 0x0F
                    n = buffer[1] & 0x7F
                    head = 2
                    if n == 126:
                        if len(buffer) < 4:
                            break
                        n, head = struct.unpack_from("!H", buffer, 2)[0], 4
                    elif n == 127:
                        if len(buffer) < 10:
                            break
                        n, head = struct.unpack_from("!Q", buffer, 2)[0], 10
                    if len(buffer) < head + n:
                        break
                    payload = buffer[head : head + n]
                    buffer = buffer[head + n :]
                    if opcode == 0x1:
                        stats.frames += 1
                        self.on_frame(payload)
                    elif opcode == 0x9:  # ping: answer with a pong of the same payload
                        await self.write(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
                    elif opcode == 0x8:
                        code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
                        stats.closed[code] += 1
                        self.alive = False
                        return
                data = await self.stream.receive_some(65536)
                if not data:
                    stats.closed[1006] += 1
                    self.alive = False
                    return
                buffer += data
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            stats.closed[1006] += 1
            self.alive = False

    def on_frame(self, payload: bytes) -> None:
        now = time.perf_counter()
        if b'"ref"' not in payload and not any(k in payload for k in _INTERESTING):
            return  # most frames are a day's state change: nothing to answer or time
        frame = orjson.loads(payload)
        for op in frame["ops"]:
            ref = op.get("ref")
            if ref is not None:
                sent = self.pending.pop(ref, None)
                if sent is not None and self.stats.measuring:
                    kind, at = sent
                    self.stats.answered[kind] += 1
                    if kind == "ping" and op["op"] == "pong":
                        self.stats.ping_rtt.append(now - at)
                    elif kind == "answer":
                        self.stats.answer_rtt.append(now - at)
            kind = op["op"]
            if kind == "error":
                self.stats.errors[op["code"]] += 1
            elif kind == "welcome":
                snap = op["snapshot"]
                self.npcs = [n["id"] for n in snap["npcs"] if n.get("alive", True)]
                self.actions = snap["actions"]
                if not self.welcomed.is_set():
                    self.stats.arrived(welcomed=True)
                self.welcomed.set()
            elif kind == "prompt":
                self.nursery.start_soon(self.answer_later, op["id"], self.rng.choice(op["choices"])["key"])
            elif kind == "npc" and op.get("alive") and op["id"] not in self.npcs:
                self.npcs.append(op["id"])
            elif kind == "state" and "actions" in op:
                self.actions = op["actions"]
            elif kind == "died":
                self.nursery.start_soon(self.send, "new_life")

    async def answer_later(self, prompt: int, key: str) -> None:
        await trio.sleep(self.rng.uniform(1, 5))
        if self.alive:
            await self.send("answer", measure="answer", prompt=prompt, choice=key)

    async def play(self, stop: trio.Event) -> None:
        rng = self.rng
        now = trio.current_time()
        next_ping = now + rng.uniform(0, 5)
        next_act = now + rng.uniform(0, 20)
        next_say = now + rng.uniform(0, 120)
        while self.alive and not stop.is_set():
            with trio.move_on_at(min(next_ping, next_act, next_say)):
                await stop.wait()
            now = trio.current_time()
            if not self.alive or stop.is_set():
                return
            if now >= next_ping:
                next_ping = now + rng.uniform(4, 6)
                await self.send("ping", measure="ping")
            if now >= next_act:
                next_act = now + rng.uniform(15, 25)
                # A newborn has no actions for two game years: it acts anyway and is
                # refused (not_allowed), which costs the server the same work.
                await self.send("act", action=rng.choice(self.actions or ACTIONS))
            if now >= next_say and self.npcs:
                next_say = now + rng.uniform(100, 140)
                await self.send(
                    "say",
                    npc=rng.choice(self.npcs),
                    text=rng.choice(["Hi!", "How are you?", "I got a new job.", "Want to hang out?", "I miss you."]),
                )

    async def run(self, stop: trio.Event) -> None:
        try:
            await self.connect()
        except (OSError, ConnectionError, trio.BrokenResourceError) as exc:
            self.stats.arrived(welcomed=False)
            self.stats.failures[str(exc)[:60]] += 1
            return
        self.stats.connected += 1
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self.read)
                if self.token is not None:
                    await self.send("login", token=self.token)
                else:
                    await self.send("register", name=f"Load {self.index}")
                with trio.move_on_after(30):
                    await self.welcomed.wait()
                await self.play(stop)
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.alive = False
        finally:
            if self.stream is not None:
                await trio.aclose_forcefully(self.stream)


async def start_spy(pid: int, profile: str) -> trio.Process:
    """py-spy sampling the server from now until :func:`stop_spy` (SIGINT
    makes it write ``profile``: .json speedscope, .txt collapsed stacks, else
    a flame graph .svg)."""
    fmt = "speedscope" if profile.endswith(".json") else "raw" if profile.endswith(".txt") else "flamegraph"
    return await trio.lowlevel.open_process(
        ["py-spy", "record", "--rate", "200", "--pid", str(pid), "--output", profile, "--format", fmt],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def stop_spy(spy: trio.Process | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        with trio.fail_after(60):
            await spy.wait()


# V8's flags for our generator (environment: LOADGEN_NODE_FLAGS). A young
# generation of 64 MB is the peer's run.sh's setting for its own generator;
# an old generation that starts at 1 GB keeps V8's full
# collections out of a one-minute window: with 19,500 sockets each one
# stalled the generator 350-700 ms, which the window counted as the server's
# round trips (its p99 went from 138 to 260-300 ms; docs/BENCHMARKS.md).
LOADGEN_NODE_FLAGS = "--max-semi-space-size=64 --initial-old-space-size=1024"


def loadgen_node_flags() -> str:
    return os.environ.get("LOADGEN_NODE_FLAGS", LOADGEN_NODE_FLAGS)


async def _run_node(
    server_pid: int,
    port: int,
    players: int,
    duration: float,
    ramp: float,
    seed: int,
    scrape: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
    tokens_file: str | None = None,
    interval: float = 0.0,
    profile: str | None = None,
) -> dict[str, Any]:
    """Run scripts/loadgen.mjs pinned to CPU 1; the server's CPU and RSS are
    taken over the window the generator measures (it marks it on stderr), and
    so are its tick and collector figures when ``scrape`` reads them. With
    ``interval``, also the server's CPU and RSS over each ``interval`` seconds
    of the window (``server_series``: does a long run level off?). With
    ``profile``, py-spy records the server over the window."""
    gen = await trio.lowlevel.open_process(
        [
            "taskset",
            "-c",
            "1",
            "node",
            *loadgen_node_flags().split(),
            str(HERE / "loadgen.mjs"),
            str(port),
            str(players),
            str(ramp),
            str(duration),
            str(seed),
            *([tokens_file] if tokens_file else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert gen.stdout is not None and gen.stderr is not None
    out = b""
    window: dict[str, Any] = {"peak_rss": 0}
    spy: trio.Process | None = None

    async def read_out() -> None:
        nonlocal out
        assert gen.stdout is not None
        while chunk := await gen.stdout.receive_some(65536):
            out += chunk

    async def watch(cancel: trio.CancelScope) -> None:
        nonlocal spy
        assert gen.stderr is not None
        buffer = b""
        while chunk := await gen.stderr.receive_some(4096):
            buffer += chunk
            if b"MEASURE_START" in buffer and "cpu0" not in window:
                window["cpu0"], _ = proc_stat(server_pid)
                window["t0"] = time.perf_counter()
                if scrape is not None:
                    window["ticks0"] = await scrape("start")
                if profile:
                    spy = await start_spy(server_pid, profile)
            if b"MEASURE_END" in buffer and "cpu1" not in window:
                window["cpu1"], _ = proc_stat(server_pid)
                window["t1"] = time.perf_counter()
                await stop_spy(spy)
                spy = None
                if scrape is not None:
                    window["ticks1"] = await scrape("end")
        cancel.cancel()

    series: list[dict[str, float]] = []

    async def sample_rss() -> None:
        mark: tuple[float, float] | None = None  # (seconds, cpu) where the interval began
        while True:
            await trio.sleep(1)
            if "cpu0" in window and "cpu1" not in window:
                cpu, rss = proc_stat(server_pid)
                window["peak_rss"] = max(window["peak_rss"], rss)
                now = time.perf_counter()
                if interval and mark is None:
                    mark = (window["t0"], window["cpu0"])
                if mark is not None and now - mark[0] >= interval:
                    series.append(
                        {
                            "end_s": round(now - window["t0"], 1),
                            "cpu_percent": round(100 * (cpu - mark[1]) / (now - mark[0]), 1),
                            "rss_mb": round(rss / 2**20, 1),
                        }
                    )
                    mark = (now, cpu)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_out)
            nursery.start_soon(sample_rss)
            await watch(nursery.cancel_scope)
    finally:
        with trio.CancelScope(shield=True):
            await stop_spy(spy)  # a run that ended before its window did
    await gen.wait()
    result = orjson.loads(out)
    wall = window["t1"] - window["t0"]
    result["server_cpu_percent"] = round(100 * (window["cpu1"] - window["cpu0"]) / wall, 1)
    result["server_rss_mb_peak"] = round(window["peak_rss"] / 2**20, 1)
    if "ticks0" in window and "ticks1" in window:
        result["server_ticks_measured"] = _minus(window["ticks1"], window["ticks0"])
    if interval:
        result["server_series"] = series
    return result


def _minus(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """``after - before`` for nested dicts of counters (what happened between two scrapes)."""
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, dict):
            out[key] = _minus(value, before.get(key, {}))
        else:
            out[key] = round(value - before.get(key, 0), 4)
    return out


async def run_once(
    generator: str,
    server: str,
    players: int,
    duration: float,
    ramp: float,
    seed: int,
    extra_env: dict[str, str],
    profile: str | None = None,
    lives: str = "newborn",
    templates: int = 500,
    interval: float = 0.0,
    python: str = sys.executable,
    metrics_out: str | None = None,
) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="baolife-load-")
    tokens: list[str] | None = None
    seeded: dict[str, Any] | None = None
    if lives == "mixed":
        if server != "ours":
            raise SystemExit("--lives mixed needs --server ours (the bare server has no store)")
        # Seeded where the server will read them: its own SQLite file, or the
        # database an --env BAOLIFE_DB_URL names (an empty one: seeding adds accounts).
        db_url = extra_env.get("BAOLIFE_DB_URL", f"sqlite:///{tmp}/server.db")
        seeded, tokens = await _seed(tmp, db_url, players, templates, seed)
    # Per-IP limits raised through settings, as a load test from one address must.
    env = loopback_env(tmp, conn_per_ip=1000000, register_per_ip_hour=1000000, max_connections=1000000)
    env.update(extra_env)
    if server == "ours":
        command = [python, "-m", "baolife", "serve"]
    else:
        command = [sys.executable, str(HERE / "bench_ceiling.py")]
        if server == "bare-writer":  # A/B of the send path: no direct writes
            command.append("--no-direct-write")
        if server == "bare-tasks":  # A/B of the read path: a reader task per connection
            command.append("--reader-tasks")
    stats = Stats(players)
    spy: trio.Process | None = None
    async with child_server(["taskset", "-c", "0", *command], env, tmp) as child:
        proc, port = child.proc, child.ws_port
        if generator == "node":
            http_port = child.http_port
            scrape = None
            if server == "ours":

                async def scrape(edge: str) -> dict[str, Any]:
                    # The window's first and last reads of /metrics (FILE.start, FILE.end).
                    return await _scrape(http_port, metrics_out and f"{metrics_out}.{edge}")

            tokens_file = f"{tmp}/tokens" if tokens is not None else None
            result = await _run_node(
                proc.pid, port, players, duration, ramp, seed, scrape, tokens_file, interval, profile
            )
            server_metrics = await _scrape(http_port, metrics_out) if server == "ours" else {}
            return await _report(child, server, players, duration, ramp, result, server_metrics, seeded)
        rng = random.Random(seed)
        stop = trio.Event()
        gen_cpu0 = time.process_time()
        gen_wall0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            started = trio.current_time()
            for i in range(players):
                token = tokens[i] if tokens is not None else None
                nursery.start_soon(Player(i, port, stats, random.Random(rng.random()), token).run, stop)
                await trio.sleep_until(started + (i + 1) / ramp)
            ramp_seconds = trio.current_time() - started
            # As the Node generator: measure once everyone is welcomed (or
            # gave up), at most a minute after the ramp, then settle.
            with trio.move_on_after(60):
                await stats.all_in.wait()
            await trio.sleep(5)  # let the last players settle before measuring
            if profile:
                spy = await start_spy(proc.pid, profile)
            stats.measuring = True
            meter = LagMeter()
            nursery.start_soon(meter.run)
            cpu0, _ = proc_stat(proc.pid)
            wall0 = time.perf_counter()
            frames0 = stats.frames
            peak_rss = 0
            end = trio.current_time() + duration
            while trio.current_time() < end:
                await trio.sleep(min(1.0, end - trio.current_time()))
                peak_rss = max(peak_rss, proc_stat(proc.pid)[1])
            cpu1, _ = proc_stat(proc.pid)
            wall = time.perf_counter() - wall0
            frames = stats.frames - frames0
            stats.measuring = False
            server_metrics = await _scrape(child.http_port, metrics_out) if server == "ours" else {}
            stop.set()
            nursery.cancel_scope.cancel()
        gen_cpu = time.process_time() - gen_cpu0
        gen_wall = time.perf_counter() - gen_wall0
        await stop_spy(spy)
        measured = {
            "connected": stats.connected,
            "connect_failures": stats.failed,
            "failure_reasons": dict(stats.failures),
            "ping_rtt_ms": stats.percentiles(stats.ping_rtt),
            "answer_rtt_ms": stats.percentiles(stats.answer_rtt),
            "errors_by_code": dict(stats.errors),
            "welcomed": stats.welcomed,
            "sent_while_measuring": dict(stats.sent),
            "answered_while_measuring": dict(stats.answered),
            "closed_by_server": {str(k): v for k, v in stats.closed.items()},
            "frames_per_second": round(frames / wall, 1),
            "server_cpu_percent": round(100 * (cpu1 - cpu0) / wall, 1),
            "server_rss_mb_peak": round(peak_rss / 2**20, 1),
            "ramp_seconds": round(ramp_seconds, 1),
            "generator_loop_lag_ms": stats.percentiles(meter.lags),
            "generator_cpu_percent": round(100 * gen_cpu / gen_wall, 1),
        }
        return await _report(child, server, players, duration, ramp, measured, server_metrics, seeded)


async def _report(
    child: ChildServer,
    server: str,
    players: int,
    duration: float,
    ramp: float,
    measured: dict[str, Any],
    ticks: dict[str, Any],
    seeded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stop the server; the result of one run: its settings, what the
    generator measured, the server's tick figures, error log lines and exit."""
    await child.stop()
    lines = await child.log_lines()
    errors = [x for x in lines if x.get("level") in ("error", "critical")]
    return {
        "server": server,
        "players": players,
        "duration_s": duration,
        "ramp_per_s": ramp,
        "lives": "newborn" if seeded is None else seeded,
        **measured,
        "server_ticks": ticks,
        "server_error_log_lines": len(errors),
        # The first few, so that a run's report says what went wrong, and when
        # (the tick, against the ramp's and the window's), with the warnings by event.
        "server_errors": [
            {k: x.get(k) for k in ("event", "error", "exception", "timestamp", "tick") if k in x} for x in errors[:5]
        ],
        "server_warnings": dict(Counter(x.get("event") for x in lines if x.get("level") == "warning")),
        "server_exit_code": child.proc.returncode,
    }


async def _seed(folder: str, db_url: str, players: int, templates: int, seed: int) -> tuple[dict[str, Any], list[str]]:
    """Seed the server's store with ``players`` lives of every age
    (scripts/seed_lives.py); returns its report and the login tokens."""
    done = await trio.run_process(
        [
            sys.executable,
            str(HERE / "seed_lives.py"),
            "--players",
            str(players),
            "--templates",
            str(templates),
            "--seed",
            str(seed),
            "--db",
            db_url,
            "--tokens",
            f"{folder}/tokens",
        ],
        capture_stdout=True,
    )
    tokens = (await trio.Path(folder, "tokens").read_text()).split()
    return orjson.loads(done.stdout), tokens


async def _scrape(port: int, save_to: str | None = None) -> dict[str, Any]:
    """Tick and garbage collector figures from the server's /metrics (the
    whole text written to ``save_to`` when given)."""
    text = await fetch_metrics(port)
    if save_to:
        await trio.Path(save_to).write_text(text)
    out: dict[str, Any] = {}
    for line in text.splitlines():
        name = line.split(" ", 1)[0]
        if name in ("baolife_tick_overruns_total", "baolife_ticks_total"):
            out[name.removeprefix("baolife_")] = float(line.split()[1])
        elif name.startswith(("baolife_tick_duration_seconds_bucket", "baolife_tick_wake_late_seconds_bucket")):
            kind = "duration" if "duration" in name else "wake_late"
            le = re.search(r'le="([^"]+)"', name)
            if le:
                out.setdefault(kind, {})[le.group(1)] = float(line.split()[1])
        elif name.startswith(("baolife_gc_pause_seconds_count", "baolife_gc_pause_seconds_sum")):
            # Passes of the garbage collector and their seconds, by generation.
            generation = re.search(r'generation="(\d)"', name)
            if generation:
                field = "passes" if "_count" in name else "seconds"
                out.setdefault("gc", {}).setdefault(generation.group(1), {})[field] = float(line.split()[1])
    return out


def verdict(result: dict[str, Any], p95_ms: float) -> bool:
    ping = result["ping_rtt_ms"]
    return bool(result["connect_failures"] == 0 and ping["n"] and ping["p95"] is not None and ping["p95"] <= p95_ms)


async def main(args: argparse.Namespace) -> int:
    pinned = True
    try:
        os.sched_setaffinity(0, {1})  # the generator on CPU 1, the server on CPU 0
    except (AttributeError, OSError):
        pinned = False  # not Linux or one CPU: the figures then say less, and the report says so
    where = {**machine(), "generator_affinity": sorted(os.sched_getaffinity(0)) if pinned else None}
    report: dict[str, Any] = {
        "generator": args.generator,
        "command": " ".join(["scripts/loadtest", *sys.argv[1:]]),
        "machine": where,
    }
    extra = dict(kv.split("=", 1) for kv in args.env)
    if not args.find_limit:
        result = await run_once(
            args.generator,
            args.server,
            args.players,
            args.duration,
            args.ramp,
            args.seed,
            extra,
            args.profile,
            args.lives,
            args.templates,
            args.interval,
            args.server_python,
            args.metrics_out,
        )
        report["result"] = result
        if args.peer:
            report["peer"] = peer = await run_peer(args.peer_dir, args.players)
            report["ours_to_peer"] = peer_ratios(result, peer)
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return 0
    limits: dict[str, Any] = {}
    for server in ("bare", "ours"):
        steps = []
        best = 0
        n = args.start
        while n <= args.max_players:
            lives = args.lives if server == "ours" else "newborn"
            result = await run_once(
                args.generator, server, n, args.duration, args.ramp, args.seed, extra, None, lives, args.templates
            )
            ok = verdict(result, args.p95_ms)
            steps.append(
                {
                    "players": n,
                    "ok": ok,
                    "ping_p95_ms": result["ping_rtt_ms"]["p95"],
                    "ping_p99_ms": result["ping_rtt_ms"]["p99"],
                    "server_cpu_percent": result["server_cpu_percent"],
                    "server_rss_mb_peak": result["server_rss_mb_peak"],
                    "generator_cpu_percent": result["generator_cpu_percent"],
                    # A failed step may be the generator's own stall, or a collector pass.
                    "generator_loop_lag_max_ms": result.get("generator_loop_lag_ms", {}).get("max"),
                    "server_gc_measured": result.get("server_ticks_measured", {}).get("gc"),
                    "tick_overruns_measured": result.get("server_ticks_measured", {}).get("tick_overruns_total"),
                    "connect_failures": result["connect_failures"],
                }
            )
            print(orjson.dumps({"step": server, **steps[-1]}).decode(), file=sys.stderr)
            if not ok:
                break
            best = n
            n += args.step
        # A server that never failed was not measured to its limit: its
        # ceiling is only known to be above the last step.
        limits[server] = {"largest_ok": best, "limit_reached": bool(steps) and not steps[-1]["ok"], "steps": steps}
    report["p95_ms_limit"] = args.p95_ms
    # No server here can hold more connections than it may open files.
    open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    report["open_files_limit"] = open_files
    report["limits"] = limits
    report.update(ratio_report(limits, open_files))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


async def run_peer(folder: str, players: int) -> dict[str, Any]:
    """Colyseus 0.18 with 50-player rooms under the same workload, right
    after our run (its own run.sh: server on CPU 0, its generator on CPU 1,
    20 s measured after 5 s settling); its result line."""
    run_sh = Path(folder) / "run.sh"
    if not run_sh.is_file():
        raise SystemExit(f"--peer colyseus: no {run_sh} (set --peer-dir)")
    # The peer's generator keeps its run.sh's own V8 flags (ours, given to
    # it, measured its p99 at 234 and 1,331 ms against 176 ms with its own).
    env = {k: v for k, v in os.environ.items() if k != "LOADGEN_NODE_FLAGS"}
    env.update(VARIANTS="room50", NS=str(players))
    done = await trio.run_process(["bash", str(run_sh)], env=env, capture_stdout=True, capture_stderr=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith(b'{"system"')]
    if not lines:
        raise SystemExit(f"--peer colyseus printed no result: {done.stderr.decode(errors='replace')[-500:]}")
    return dict(orjson.loads(lines[-1]))


def peer_ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    """Ours over the peer's (below 1: ours uses less) for CPU, peak RSS and p99 ping."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "server_cpu": ratio(ours["server_cpu_percent"], peer.get("server_cpu_pct")),
        "server_rss": ratio(ours["server_rss_mb_peak"], peer.get("server_rss_mb")),
        "ping_p99": ratio(ours["ping_rtt_ms"]["p99"], peer.get("p99")),
    }


def ratio_report(limits: dict[str, Any], open_files: int) -> dict[str, float | None]:
    """Ours against bare, each server's limit being its largest passing step:
    exact when both failed at a step; a lower bound when ours never failed
    (its limit is higher; the bare limit is the measured one, or at most the
    open-files limit when bare never failed either); when only bare never
    failed, an upper bound (its limit is higher than its last step) and a
    lower one (its limit is below the open-files limit)."""
    ours, bare = limits["ours"], limits["bare"]
    if not bare["largest_ok"]:
        return {"ratio_ours_to_bare": None}
    if ours["limit_reached"] and bare["limit_reached"]:
        return {"ratio_ours_to_bare": round(ours["largest_ok"] / bare["largest_ok"], 3)}
    if ours["limit_reached"]:
        # The bare ceiling is above its last step, and below the open-files limit.
        return {
            "ratio_ours_to_bare_at_most": round(ours["largest_ok"] / bare["largest_ok"], 3),
            "ratio_ours_to_bare_at_least": round(ours["largest_ok"] / open_files, 3),
        }
    bound = bare["largest_ok"] if bare["limit_reached"] else open_files
    return {"ratio_ours_to_bare_at_least": round(ours["largest_ok"] / bound, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Load test over real WebSockets (see the module docstring).")
    parser.add_argument(
        "--server",
        choices=["ours", "bare", "bare-writer", "bare-tasks"],
        default="ours",
        help="bare-writer: the bare server sending every frame through writer tasks; "
        "bare-tasks: the bare server reading each connection in its own task (A/Bs)",
    )
    parser.add_argument(
        "--generator",
        choices=["node", "python"],
        default="node" if shutil.which("node") else "python",
        help="node (scripts/loadgen.mjs, default when node is installed) or python (this script)",
    )
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=60, help="seconds measured after the ramp")
    parser.add_argument("--ramp", type=float, default=200, help="new players per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lives",
        choices=("newborn", "mixed"),
        default="newborn",
        help="newborn: players register; mixed: the store is seeded with lives of every age "
        "(scripts/seed_lives.py) and players log in to them",
    )
    parser.add_argument("--templates", type=int, default=500, help="distinct lives seeded with --lives mixed")
    parser.add_argument(
        "--peer",
        choices=("colyseus",),
        help="then run the peer (Colyseus 0.18, 50-player rooms, ../shared/peers/colyseus) with the same number "
        "of players in the same sitting and print ours over its CPU, RSS and p99 ping",
    )
    parser.add_argument("--peer-dir", default=str(HERE.parents[1] / "shared" / "peers" / "colyseus"))
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server setting (BAOLIFE_DB_URL=mysql://...: an empty database, which --lives mixed seeds)",
    )
    parser.add_argument(
        "--server-python",
        default=sys.executable,
        metavar="PYTHON",
        help="the interpreter that runs our server (default: this one). One of a venv with only the runtime "
        "dependencies (`pip install .`, as docs/OPERATIONS.md deploys) measures the server as it is deployed: in "
        "the test venv PyMySQL also loads `cryptography` (there for trustme), 6 MB of RSS",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also report the server's CPU and RSS over each SECONDS of the measured window (node generator; for "
        "long runs: do they level off?)",
    )
    parser.add_argument(
        "--metrics-out",
        metavar="FILE",
        help="write the server's whole /metrics text, as it stands when the run ends, to FILE (ours only), and "
        "at the measured window's start and end to FILE.start and FILE.end (node generator)",
    )
    parser.add_argument("--find-limit", action="store_true", help="step N up against both servers")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="record the server with py-spy while measured (.svg flame graph, .json speedscope, .txt collapsed stacks)",
    )
    parser.add_argument("--start", type=int, default=1000)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--max-players", type=int, default=12000)
    parser.add_argument("--p95-ms", type=float, default=150)
    sys.exit(trio.run(main, parser.parse_args()))
