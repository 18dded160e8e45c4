"""CPU per frame of the send path: ``Delivery.flush`` into real sessions.

The server's tick ends with :meth:`baolife.tick.delivery.Delivery.flush`:
each connection's ops of the tick encoded into one frame, the frame kept in
the player's resume ring, and handed to ``Session.send_frame``
(:mod:`baolife.net.session`), which writes it to the socket. This drives exactly that, with
real sessions over real TCP connections on 127.0.0.1 (the other ends are
held and drained by a child process, as the load test's clients would), and
ops made by the real engine: players of every age with the full content, a
day each round (mostly one small ``state`` op, some ``prompt``, ``npc``,
``feed``, ``warning``), and one frame in five a ``pong`` alone (a ping every
5 s against a day a second).

Prints microseconds of process CPU per frame (median and best over the
rounds, the machine being shared):

* ``flush``: the whole of ``Delivery.flush`` (what the tick pays);
* ``encode``: ``protocol.encode_frame`` alone, on the same ops;
* ``ring``: keeping the frame for resume alone (the copy and the append);
* ``write``: ``Session.send_frame`` alone, frames already encoded;
* ``syscall``: a bare ``os.write`` of the same bytes (the floor of ``write``);

and ``rest`` = flush - encode - ring - write (the loop, counting ops); the
share of each phase's CPU spent in the kernel (``os.times``); and the cost
of encoding a frame of one op, for each kind of op the engine made.
Compare two trees with ``PYTHONPATH=<tree>`` (the tree is in the report).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import os
import random
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import trio
from seed_lives import spread_world
from serverlib import machine

import baolife
from baolife import protocol as wire
from baolife.app import GC_THRESHOLDS
from baolife.net.session import Session
from baolife.net.ws import WsConnection, text_frame
from baolife.tick import delivery as delivery_mod
from baolife.tick.delivery import Delivery

YEAR = 365
PONG_SHARE = 0.2


# --------------------------------------------------------------------------- the clients' ends


def drain(port: int, count: int) -> None:
    """Child process: connect ``count`` clients, then read and drop what comes
    until stdin closes."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    sel.register(sys.stdin, selectors.EVENT_READ)
    print("connected", flush=True)
    while True:
        for key, _ in sel.select():
            if key.fileobj is sys.stdin:
                return
            with contextlib.suppress(BlockingIOError):
                if not os.read(key.fd, 1 << 16):
                    sel.unregister(key.fileobj)


def connect(count: int) -> tuple[subprocess.Popen[str], list[socket.socket]]:
    """``count`` accepted server-side sockets, their peers in a child process."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = listener.getsockname()[1]
    child = subprocess.Popen(  # noqa: S603 - this interpreter, this script
        [sys.executable, __file__, "--drain", str(port), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    listener.settimeout(60)  # the child failing to connect must not hang the run
    try:
        accepted = [listener.accept()[0] for _ in range(count)]
    except TimeoutError:
        child.kill()
        raise SystemExit("the client process stopped connecting") from None
    finally:
        listener.close()
    assert child.stdout is not None
    if child.stdout.readline().strip() != "connected":
        raise SystemExit("the client process failed to connect")
    return child, accepted


# --------------------------------------------------------------------------- the ops


def record_days(players: int, ticks: int, seed: int) -> list[dict[int, list[wire.Op]]]:
    """The engine's ops of ``ticks`` days of ``players`` of every age."""
    world = spread_world(players, seed, YEAR)
    days = []
    for tick in range(1, ticks + 1):
        world.advance(tick)
        days.append(world.take_output())
    return days


def rounds_of_ops(days: list[dict[int, list[wire.Op]]], rounds: int, seed: int) -> list[dict[int, list[wire.Op]]]:
    """Each round's outbox: a day's ops, or for one player in five a ``pong`` alone."""
    rng = random.Random(seed)
    out: list[dict[int, list[wire.Op]]] = []
    for r in range(rounds):
        pong: list[wire.Op] = [wire.Pong(ref=r)]
        out.append({pid: pong if rng.random() < PONG_SHARE else ops for pid, ops in days[r % len(days)].items()})
    return out


# --------------------------------------------------------------------------- the measurement


def cpu_us(work: Callable[[], Any], frames: int) -> float:
    started = time.process_time()
    work()
    return 1e6 * (time.process_time() - started) / frames


async def measure(socks: list[socket.socket], rounds: list[dict[int, list[wire.Op]]], pause: float) -> dict[str, Any]:
    sessions = []
    delivery = Delivery({})
    for pid, sock in enumerate(socks, start=1):
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        session = Session(
            WsConnection(stream, max_message_bytes=4096),
            "127.0.0.1",
            max_frames=64,
            max_bytes=1 << 20,
            rate=10,
            burst=10,
        )
        sessions.append(session)
        delivery.add(session)
        delivery.joined(pid, delivery.attach(session, pid, None))
    delivery.flush(0)  # nothing yet (no welcome hook)
    fds = [sock.fileno() for sock in socks]
    streams = [delivery_mod._Stream() for _ in socks]
    phases: dict[str, list[float]] = {k: [] for k in ("flush", "encode", "ring", "write", "syscall")}
    # Process CPU in user space and in the kernel, by phase (os.times counts
    # in clock ticks: summed over the rounds).
    user_sys = {k: [0.0, 0.0] for k in phases}
    frames_total = 0
    gc.collect()
    for tick, outbox in enumerate(rounds, start=1):
        pairs = list(outbox.items())
        n = len(pairs)
        frames_total += n
        encoded = [wire.encode_frame(tick, tick, ops) for _pid, ops in pairs]
        framed = [text_frame(frame) for frame in encoded]

        def flush(tick: int = tick) -> None:
            delivery.flush(tick)

        def encode(pairs: list[tuple[int, list[wire.Op]]] = pairs, tick: int = tick) -> None:
            encode_frame = wire.encode_frame
            for _pid, ops in pairs:
                encode_frame(tick, tick, ops)

        def ring(encoded: list[bytes] = encoded) -> None:
            compact = wire.compact
            for stream, frame in zip(streams, encoded, strict=False):
                stream.append(compact(frame))

        def write(encoded: list[bytes] = encoded) -> None:
            for session, frame in zip(sessions, encoded, strict=False):
                session.send_frame(frame)

        def syscall(framed: list[bytes] = framed) -> None:
            write = os.write
            for fd, data in zip(fds, framed, strict=False):
                write(fd, data)

        work: dict[str, Callable[[], None]] = {
            "flush": flush,
            "encode": encode,
            "ring": ring,
            "write": write,
            "syscall": syscall,
        }
        order = list(work)
        # Each phase first in turn; each starts, as a tick does, with the
        # sockets idle and the clients waiting (the kernel's share of a write
        # depends on it: waking the reader).
        order = order[tick % len(order) :] + order[: tick % len(order)]
        for name in order:
            if name == "flush":
                delivery.outbox.update(outbox)
            await trio.sleep(pause)
            before = os.times()
            phases[name].append(cpu_us(work[name], n))
            after = os.times()
            user_sys[name][0] += after.user - before.user
            user_sys[name][1] += after.system - before.system
    lost = [s for s in sessions if s.state != "open" or s.queued_frames]
    result: dict[str, Any] = {
        "frames": frames_total,
        "sessions_lost_or_queued": len(lost),
        "us_per_frame_median": {k: round(statistics.median(v), 3) for k, v in phases.items()},
        "us_per_frame_best": {k: round(min(v), 3) for k, v in phases.items()},
    }
    result["kernel_share"] = {k: round(v[1] / max(v[0] + v[1], 1e-9), 2) for k, v in user_sys.items()}
    med = result["us_per_frame_median"]
    med["rest"] = round(med["flush"] - med["encode"] - med["ring"] - med["write"], 3)
    for session in sessions:
        session.release_socket()
    return result


def encode_all(frames: list[list[wire.Op]]) -> None:
    # Each result dropped at once, as flush drops the encoder's block: kept,
    # every one would hold 4 KiB (see protocol.compact).
    encode_frame = wire.encode_frame
    for ops in frames:
        encode_frame(123456, 1234567, ops)


def encode_by_kind(days: list[dict[int, list[wire.Op]]], samples: int = 2000, repeat: int = 20) -> dict[str, Any]:
    """Microseconds to encode a frame holding one op of each kind the engine
    made (``pong`` added), best of ``repeat``, beside the empty frame's."""
    by_kind: dict[str, list[wire.Op]] = {"(none)": [], "pong": [wire.Pong(ref=i) for i in range(samples)]}
    for day in days:
        for ops in day.values():
            for op in ops:
                kept = by_kind.setdefault(op.op, [])
                if len(kept) < samples:
                    kept.append(op)
    out = {}
    for kind, ops in sorted(by_kind.items(), key=lambda item: -len(item[1])):
        frames: list[list[wire.Op]] = [[op] for op in ops] if ops else [[] for _ in range(samples)]
        best = min(cpu_us(functools.partial(encode_all, frames), len(frames)) for _ in range(repeat))
        size = statistics.fmean(len(wire.encode_frame(123456, 1234567, f)) for f in frames)
        out[kind] = {"us": round(best, 3), "bytes": round(size), "samples": len(frames)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU per frame of the send path (Delivery.flush into real sessions).")
    parser.add_argument(
        "--sessions", type=int, default=5000, help="connections (a descriptor each here and in the clients' process)"
    )
    parser.add_argument("--rounds", type=int, default=40, help="ticks measured, every session getting a frame")
    parser.add_argument("--days", type=int, default=10, help="distinct game days recorded from the engine")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between phases (the clients drain)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain:
        drain(*args.drain)
        return 0
    if args.sessions < 1 or args.rounds < 1 or args.days < 1:
        parser.error("--sessions, --rounds and --days must be at least 1")
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if args.sessions + 64 > limit:
        parser.error(f"--sessions {args.sessions} needs more open files than the limit ({limit}; see ulimit -n)")
    gc.set_threshold(*GC_THRESHOLDS)  # as the server sets them
    days = record_days(args.sessions, args.days, args.seed)
    rounds = rounds_of_ops(days, args.rounds, args.seed)
    sizes = [len(wire.encode_frame(1, 1, ops)) for ops in rounds[0].values()]
    by_kind = encode_by_kind(days)
    child, socks = connect(args.sessions)
    try:
        result = trio.run(measure, socks, rounds, args.pause)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        for sock in socks:
            sock.close()
    report = {
        "command": " ".join(["scripts/bench_send.py", *sys.argv[1:]]),
        "machine": machine(),
        "tree": os.path.dirname(os.path.dirname(baolife.__file__)),
        "sessions": args.sessions,
        "frame_bytes_mean": round(statistics.fmean(sizes), 1),
        "ops_per_frame_mean": round(statistics.fmean(len(ops) for ops in rounds[0].values()), 2),
        **result,
        "encode_one_op_frame_by_kind": by_kind,
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
