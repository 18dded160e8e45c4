"""Fuzz soak: random and mutated messages over real sockets at a running server.

Starts ``baolife serve`` as a child process (JSON logs captured), opens
``--connections`` hostile connections that send ``--messages`` messages in all
(valid, wrong types, huge numbers, deep nesting, invalid UTF-8, binary frames,
unknown types, oversized strings and frames, messages out of order), while one
well-behaved player plays and measures its round trips. It then checks:

* the server is alive and exits 0 on SIGTERM;
* no error-level line or traceback in its logs;
* every message with an id was answered (ack, error, pong, welcome...), unless
  its connection was closed for a documented reason (1007, 1008, 1009, 1000);
* the well-behaved player saw no error, and every pong came in the frame of the
  first or second tick after its ping was sent (no delay beyond one tick).

Prints one JSON object with the figures; exit status 1 if a check failed.
Per-IP limits are raised through settings, as a load test from one address must.

One piece: one tool run as one file, whose fuzzer, hostile connections,
well-behaved player and checks share the tally of one run.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from typing import Any

import orjson
import trio
from serverlib import child_server, fetch_metrics, loopback_env, machine, proc_stat
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Ping, Request, TextMessage

TYPES = ["register", "login", "resume", "answer", "act", "say", "ping", "new_life", "logout"]
DOCUMENTED_CLOSES = {1000, 1007, 1008, 1009}


class Conn:
    """A raw wsproto client connection with a background reader."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.outstanding: dict[Any, str] = {}
        self.server_closed_first = False
        self.ops: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.close_code: int | None = None
        self.closed = trio.Event()
        self.frames: list[dict[str, Any]] = []
        self.keep_frames = False
        self.logged_in = False
        self.prompts: list[tuple[int, str]] = []
        self.npcs: list[int] = []
        self.new_frame = trio.Event()
        self.answered = trio.Event()  # set whenever an outstanding id is answered
        self.welcomed = trio.Event()
        self.lock = trio.StrictFIFOLock()  # the reader (pongs, close replies) and the sender share the stream

    @classmethod
    async def open(cls, port: int) -> Conn:
        with trio.fail_after(10):  # a handshake the server never answers is a finding, not a hang
            return await cls._open(port)

    @classmethod
    async def _open(cls, port: int) -> Conn:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host="127.0.0.1", target="/ws")))
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionError("closed during handshake")
            ws.receive_data(data)
            if any(isinstance(e, AcceptConnection) for e in ws.events()):
                return cls(stream, ws)

    async def read(self) -> None:
        parts: list[str] = []
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    break
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, TextMessage):
                        parts.append(event.data)
                        if event.message_finished:
                            self.on_frame(orjson.loads("".join(parts)))
                            parts = []
                    elif isinstance(event, Ping):
                        await self.send(self.ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        self.close_code = event.code
                        self.server_closed_first = self.ws.state is ConnectionState.REMOTE_CLOSING
                        if self.ws.state is ConnectionState.REMOTE_CLOSING:
                            await self.send(self.ws.send(event.response()), even_if_closed=True)
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.close_code = self.close_code or 1006
        finally:
            if self.close_code is None:
                self.close_code = 1006
            self.closed.set()
            self.answered.set()

    def on_frame(self, frame: dict[str, Any]) -> None:
        if self.keep_frames:
            self.frames.append(frame)
            self.new_frame.set()
            self.new_frame = trio.Event()
        for op in frame["ops"]:
            self.ops[op["op"]] += 1
            if "ref" in op and self.outstanding.pop(op["ref"], None) is not None:
                self.answered.set()
                self.answered = trio.Event()
            if op["op"] == "error":
                self.errors[op["code"]] += 1
            elif op["op"] == "welcome":
                self.logged_in = True
                self.welcomed.set()
                self.npcs = [n["id"] for n in op["snapshot"]["npcs"]]
                self.prompts = [(p["id"], p["choices"][0]["key"]) for p in op["snapshot"]["prompts"]]
            elif op["op"] == "prompt":
                self.prompts.append((op["id"], op["choices"][0]["key"]))

    async def send(self, data: bytes, *, even_if_closed: bool = False) -> bool:
        if self.closed.is_set() and not even_if_closed:
            return False
        try:
            async with self.lock:
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return False
        return True

    def text(self, text: str) -> bytes:
        return self.ws.send(TextMessage(data=text))

    async def send_text(self, text: str) -> bool:
        """Send one text message unless the connection is closing."""
        if self.ws.state is not ConnectionState.OPEN:
            return False
        return await self.send(self.text(text))


def masked_text_frame(payload: bytes) -> bytes:
    """A client text frame with arbitrary (possibly invalid UTF-8) payload."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    else:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + mask + body


class Fuzzer:
    """Makes one hostile message at a time from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ids = 0
        self.kinds: Counter[str] = Counter()
        self.last_type = ""

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        choice = r.randrange(12)
        if choice == 0:
            return r.randint(-(2**63), 2**63 - 1)
        if choice == 1:
            return r.random() * 10 ** r.randint(-5, 300)
        if choice == 2:
            return None
        if choice == 3:
            return r.choice([True, False])
        if choice == 4:
            return "".join(chr(r.randint(32, 0x2FFF)) for _ in range(r.randint(0, 40)))
        if choice == 5:
            return "x" * r.randint(400, 3000)
        if choice == 6 and depth < 3:
            return [self.value(depth + 1) for _ in range(r.randint(0, 4))]
        if choice == 7 and depth < 3:
            return {str(self.value(depth + 1))[:10]: self.value(depth + 1) for _ in range(r.randint(0, 3))}
        if choice == 8:
            return r.randint(0, 50)
        if choice == 9:
            return r.choice(["a", "b", "study", "play", "exercise", "", " "])
        return r.randint(-5, 5)

    def next(self, conn: Conn) -> tuple[bytes, Any, str]:
        before = self.kinds.copy()
        data, ref = self._next(conn)
        kind = next(iter((self.kinds - before).keys()))
        return data, ref, kind

    def _next(self, conn: Conn) -> tuple[bytes, Any]:
        """(frame bytes, the id expected back or None, what kind of message)."""
        r = self.rng
        self.ids += 1
        ref: Any = self.ids if r.random() < 0.5 else f"s{self.ids}"
        roll = r.random()
        if roll < 0.004:
            self.kinds["invalid_utf8"] += 1
            return masked_text_frame(b'{"type": "ping", "x": "\xff\xfe\xc3\x28"}'), None
        if roll < 0.04:
            self.kinds["binary"] += 1
            return conn.ws.send(BytesMessage(data=os.urandom(r.randint(1, 64)))), None
        if roll < 0.044:
            self.kinds["oversized"] += 1
            return conn.text('{"type":"ping","x":"' + "y" * 5000 + '"}'), None
        if roll < 0.12:
            self.kinds["deep_nesting"] += 1
            depth = r.choice([50, 500, 2000])
            text = '{"type":"ping","id":' + str(self.ids) + ',"x":' + "[" * depth + "]" * depth + "}"
            # Past orjson's nesting limit (1024) the message is not JSON at all: no id to echo.
            return conn.text(text), (self.ids if depth < 1000 else None)
        if roll < 0.16:
            self.kinds["not_json"] += 1
            return conn.text(r.choice(["", "{", "null", "[1,2]", '"str"', "{'a':1}", "tru"])), None
        if roll < 0.20:
            self.kinds["huge_number"] += 1
            digits = "9" * r.randint(20, 400)
            return conn.text('{"type":"answer","id":' + str(self.ids) + ',"prompt":' + digits + "}"), None
        msg: dict[str, Any] = {"id": ref}
        if roll < 0.30:
            self.kinds["unknown_type"] += 1
            msg["type"] = r.choice(["__import__('os')", "eval", "", "PING", "ping ", "x" * 100])
        elif roll < 0.60:
            self.kinds["valid_shape"] += 1
            msg.update(self.valid(conn))
        else:
            self.kinds["mutated"] += 1
            msg["type"] = r.choice(TYPES)
            fields = ["name", "token", "last_seq", "prompt", "choice", "action", "npc", "text", "zzz"]
            for field in r.sample(fields, k=r.randint(0, 4)):
                msg[field] = self.value()
        if r.random() < 0.05:
            msg["id"] = self.value()  # a bad id: answered without ref
            ref = None
        data = orjson.dumps(msg)
        if len(data) > 4096:
            ref = None  # closes with 1009 by design
        elif ref is not None:
            self.last_type = str(msg.get("type"))[:20]
        return conn.text(data.decode()), ref

    def valid(self, conn: Conn) -> dict[str, Any]:
        r = self.rng
        if not conn.logged_in and r.random() < 0.3:
            return {"type": "register", "name": f"Fuzz {r.randint(1, 10**6)}"}
        kind = r.choice(["answer", "act", "say", "ping", "new_life", "login", "resume", "register"])
        if kind == "answer":
            prompt = conn.prompts.pop() if conn.prompts and r.random() < 0.7 else (r.randint(1, 9), "a")
            return {"type": "answer", "prompt": prompt[0], "choice": prompt[1]}
        if kind == "act":
            return {"type": "act", "action": r.choice(["study", "play", "exercise", "find_job", "nope", "see_doctor"])}
        if kind == "say":
            return {"type": "say", "npc": r.choice(conn.npcs or [1]), "text": "hello " * r.randint(1, 20)}
        if kind in ("login", "resume"):
            return {"type": kind, "token": "t" * r.randint(1, 60), "last_seq": r.randint(0, 9)}
        if kind == "register":
            return {"type": "register", "name": f"Fuzz {r.randint(1, 10**6)}"}
        return {"type": kind}


async def hostile(port: int, fuzzer: Fuzzer, budget: int, rate: float, tally: dict[str, Any]) -> None:
    """One hostile connection slot at ``rate`` messages per second; it
    reconnects whenever the server closes it."""
    sent = 0
    next_at = trio.current_time()
    while sent < budget:
        try:
            conn = await Conn.open(port)
        except (ConnectionError, OSError, trio.TooSlowError) as exc:
            # A refused handshake is a finding, not a crash of the soak.
            tally["open_failures"].append(repr(exc))
            break
        tally["connections"] += 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.read)
            while sent < budget and not conn.closed.is_set() and conn.ws.state is ConnectionState.OPEN:
                data, ref, kind = fuzzer.next(conn)
                if ref is not None:
                    typed = kind in ("valid_shape", "mutated", "unknown_type")
                    conn.outstanding[ref] = f"{kind}:{fuzzer.last_type}" if typed else kind
                if not await conn.send(data):
                    conn.outstanding.pop(ref, None)
                    break
                sent += 1
                next_at += 1.0 / rate
                await trio.sleep_until(next_at)
            if not conn.closed.is_set():
                # Give the server a moment to answer the last messages, then leave.
                with trio.move_on_after(2.0):
                    while conn.outstanding and not conn.closed.is_set():
                        await conn.answered.wait()
                if conn.ws.state is ConnectionState.OPEN:
                    await conn.send(conn.ws.send(CloseConnection(code=1000)))
                with trio.move_on_after(2.0):
                    await conn.closed.wait()
            nursery.cancel_scope.cancel()
        await conn.stream.aclose()
        tally["closes"][conn.close_code] += 1
        tally["ops"].update(conn.ops)
        tally["errors"].update(conn.errors)
        if conn.server_closed_first or conn.close_code in DOCUMENTED_CLOSES - {1000}:
            # The server ended the connection (logout, 1007, 1009, 1008): what was
            # still in flight went down with it.
            tally["dropped_by_close"] += len(conn.outstanding)
        else:
            tally["unanswered"] += len(conn.outstanding)
            tally["unanswered_kinds"].update(conn.outstanding.values())
            if conn.outstanding and os.environ.get("SOAK_DEBUG"):
                print(
                    "DEBUG",
                    conn.close_code,
                    conn.server_closed_first,
                    len(conn.outstanding),
                    sent,
                    dict(conn.ops),
                    sorted(conn.outstanding, key=str)[:5],
                    file=sys.stderr,
                )
    tally["sent"] += sent


async def good_player(port: int, stop: trio.Event, tally: dict[str, Any]) -> None:
    """Plays politely: pings every 100 ms and answers prompts; measures."""
    conn = await Conn.open(port)
    conn.keep_frames = True
    lags: list[int] = []
    rtts: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.read)
        await conn.send_text('{"type":"register","name":"Good Player","id":"r"}')
        with trio.move_on_after(30):
            await conn.welcomed.wait()
        if not conn.welcomed.is_set():
            tally["crash"] = "the good player was not welcomed within 30 s"
        n = 0
        while conn.welcomed.is_set() and not stop.is_set() and not conn.closed.is_set():
            n += 1
            ref = f"p{n}"
            # Ping right as a fresh frame (tick T) arrives: the server is then
            # still in tick T, so a prompt server answers in the frame of T+1.
            with trio.move_on_after(5):
                await conn.new_frame.wait()
            if not conn.frames or conn.closed.is_set():
                break
            last_tick = conn.frames[-1]["tick"]
            sent_at = time.perf_counter()
            conn.outstanding[ref] = "ping"
            await conn.send_text(orjson.dumps({"type": "ping", "id": ref}).decode())
            with trio.move_on_after(5):
                while ref in conn.outstanding and not conn.closed.is_set():
                    await conn.answered.wait()
            if ref in conn.outstanding:
                if not conn.closed.is_set():
                    tally["crash"] = f"ping {ref} got no pong within 5 s (tick {last_tick})"
                break  # closed before its pong: reported as a disconnection
            rtts.append(time.perf_counter() - sent_at)
            pong_tick = next(f["tick"] for f in reversed(conn.frames) if any(op.get("ref") == ref for op in f["ops"]))
            lags.append(pong_tick - last_tick)
            while conn.prompts:
                pid, key = conn.prompts.pop()
                await conn.send_text(orjson.dumps({"type": "answer", "prompt": pid, "choice": key}).decode())
            conn.frames = conn.frames[-50:]
            await trio.sleep(0.1)
        disconnected = conn.close_code if conn.closed.is_set() else None
        nursery.cancel_scope.cancel()
    await conn.stream.aclose()
    tally.update(
        pings=len(rtts),
        errors=dict(conn.errors),
        close=disconnected,
        rtt_ms_p50=round(1000 * statistics.median(rtts), 2) if rtts else None,
        rtt_ms_p99=round(1000 * sorted(rtts)[int(len(rtts) * 0.99)], 2) if rtts else None,
        rtt_ms_max=round(1000 * max(rtts), 2) if rtts else None,
        tick_lag_max=max(lags) if lags else None,
        tick_lag_counts=dict(Counter(lags)),
    )


async def _scrape(port: int) -> dict[str, Any]:
    """Tick figures from the server's /metrics."""
    text = await fetch_metrics(port)
    out: dict[str, Any] = {"duration_buckets": {}, "wake_late_buckets": {}}
    for line in text.splitlines():
        if line.startswith("baolife_tick_overruns_total "):
            out["overruns"] = float(line.split()[1])
        elif line.startswith("baolife_ticks_total "):
            out["ticks"] = float(line.split()[1])
        elif line.startswith(("baolife_tick_duration_seconds_bucket", "baolife_tick_wake_late_seconds_bucket")):
            le = re.search(r'le="([^"]+)"', line)
            key = "duration_buckets" if "duration" in line else "wake_late_buckets"
            if le:
                out[key][le.group(1)] = float(line.split()[1])
    return out


async def _collect_output(proc: trio.Process, into: dict[str, Any]) -> None:
    assert proc.stdout is not None
    data = b""
    while chunk := await proc.stdout.receive_some(65536):
        data += chunk
    await proc.wait()
    try:
        into.update(orjson.loads(data))
    except orjson.JSONDecodeError:
        into["crash"] = f"the good player printed no figures (exit {proc.returncode})"


async def good_player_main(port: int) -> int:
    """Play until stdin closes; print the good player's figures as JSON."""
    stop = trio.Event()
    tally: dict[str, Any] = {}

    async def watch_stdin() -> None:
        stdin = trio.lowlevel.FdStream(os.dup(0))
        while await stdin.receive_some(1024):
            pass
        stop.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_stdin)
            await good_player(port, stop, tally)
            nursery.cancel_scope.cancel()
    except Exception as exc:  # reported in the figures: the soak must say why, not die silently
        tally["crash"] = "".join(traceback.format_exception(exc))[-3000:]
    print(orjson.dumps(tally, option=orjson.OPT_NON_STR_KEYS).decode())
    return 0


async def main(args: argparse.Namespace) -> int:
    tmp = tempfile.mkdtemp(prefix="baolife-soak-")
    # Per-IP limits raised through settings, as a load test from one address must.
    env = loopback_env(
        tmp,
        tick_hz=args.tick_hz,
        day_ticks=1,
        msg_rate=100000,
        msg_burst=100000,
        conn_per_ip=10000,
        register_per_ip_hour=1000000,
    )
    async with child_server([sys.executable, "-m", "baolife", "serve"], env, tmp) as server:
        proc, port, http_port = server.proc, server.ws_port, server.http_port
        spy = None
        if args.profile:
            # py-spy samples the server during the attack; SIGINT makes it write the profile.
            spy = await trio.lowlevel.open_process(
                [
                    "py-spy",
                    "record",
                    "--rate",
                    "250",
                    "--pid",
                    str(proc.pid),
                    "--output",
                    args.profile,
                    "--format",
                    "speedscope" if args.profile.endswith(".json") else "flamegraph",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        started = time.perf_counter()
        cpu_before = proc_stat(proc.pid)[0]
        tally: dict[str, Any] = {
            "sent": 0,
            "connections": 0,
            "unanswered": 0,
            "dropped_by_close": 0,
            "closes": Counter(),
            "ops": Counter(),
            "errors": Counter(),
            "unanswered_kinds": Counter(),
            "open_failures": [],
        }
        good: dict[str, Any] = {}
        fuzzer = Fuzzer(random.Random(args.seed))
        # The good player runs in its own process, so the fuzzers' CPU use in
        # this one does not distort its measurements.
        player = await trio.lowlevel.open_process(
            [sys.executable, __file__, "--good-player", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        crash = None
        try:
            with trio.fail_after(args.max_seconds):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_collect_output, player, good)
                    await trio.sleep(1.0)  # let it register and settle before the attack
                    async with trio.open_nursery() as attackers:
                        per = args.messages // args.connections
                        for i in range(args.connections):
                            budget = per + (1 if i < args.messages % args.connections else 0)
                            attackers.start_soon(hostile, port, fuzzer, budget, args.rate / args.connections, tally)
                    assert player.stdin is not None
                    await player.stdin.aclose()  # tells the good player to stop
        except trio.TooSlowError:
            crash = f"the soak did not end within --max-seconds {args.max_seconds}"
        except Exception as exc:  # the report says what broke instead of printing nothing
            crash = "".join(traceback.format_exception(exc))[-3000:]
        finally:
            if player.returncode is None:
                player.kill()
                with trio.CancelScope(shield=True):
                    await player.wait()
        elapsed = time.perf_counter() - started
        cpu_seconds = proc_stat(proc.pid)[0] - cpu_before
        metrics = await _scrape(http_port)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with trio.fail_after(30):
                await spy.wait()
        alive = proc.returncode is None
        rc = await server.stop()
        lines = await server.log_lines()
    bad_lines = [x for x in lines if x.get("level") in ("error", "critical") or "exception" in x]
    server_closes = Counter(x.get("reason") for x in lines if x.get("event") == "connection_closed")
    report = {
        "command": " ".join(sys.argv),
        "machine": machine(),
        "messages_sent": tally["sent"],
        "seconds": round(elapsed, 1),
        "messages_per_second": round(tally["sent"] / elapsed),
        "server_cpu_percent": round(100 * cpu_seconds / elapsed, 1),
        "server_ticks": metrics,
        "kinds": dict(fuzzer.kinds),
        "connections_opened": tally["connections"],
        "closes": {str(k): v for k, v in sorted(tally["closes"].items())},
        "answers": dict(tally["ops"]),
        "errors_by_code": dict(tally["errors"]),
        "unanswered_with_id": tally["unanswered"],
        "unanswered_kinds": dict(tally["unanswered_kinds"]),
        "dropped_with_their_connection": tally["dropped_by_close"],
        "server_close_reasons": dict(server_closes),
        "server_alive_after": alive,
        "server_exit_code": rc,
        "server_error_log_lines": len(bad_lines),
        "good_player": good,
    }
    failures = []
    if crash:
        failures.append(f"the soak itself broke: {crash}")
    if good.get("crash"):
        failures.append(f"the good player broke: {good['crash']}")
    if tally["open_failures"]:
        failures.append(f"{len(tally['open_failures'])} handshakes failed, e.g. {tally['open_failures'][0]}")
    if not alive:
        failures.append("server died")
    if rc != 0:
        failures.append(f"server exit code {rc}")
    if bad_lines:
        failures.append(f"error lines in the server log, e.g. {bad_lines[0]}")
    if tally["unanswered"]:
        failures.append(f"{tally['unanswered']} messages with an id got no answer")
    undocumented = {k for k in tally["closes"] if k not in DOCUMENTED_CLOSES}
    if undocumented:
        failures.append(f"connections closed with undocumented codes {sorted(undocumented)}")
    if good.get("errors"):
        failures.append(f"the good player saw errors {good['errors']}")
    if good.get("close") is not None:
        failures.append("the good player was disconnected")
    if (good.get("tick_lag_max") or 99) > 2:
        failures.append(f"the good player's pongs came up to {good.get('tick_lag_max')} ticks late")
    if metrics.get("overruns", 1) > 0:
        failures.append(f"the server's tick loop overran {metrics.get('overruns')} times")
    report["failures"] = failures
    if failures:
        # What the server said last, for a failure seen only on another machine.
        report["server_log_tail"] = [x for x in lines if x.get("level") != "debug"][-20:]
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=4000, help="hostile messages per second in all")
    parser.add_argument("--tick-hz", type=float, default=10)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--profile", metavar="FILE", help="record the server with py-spy into FILE (.svg or .json)")
    parser.add_argument("--good-player", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.good_player:
        sys.exit(trio.run(good_player_main, parsed.good_player))
    sys.exit(trio.run(main, parsed))
