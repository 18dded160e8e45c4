"""Benchmark of handoffs between two workers on one MariaDB (issue 13).

Run it through ``scripts/bench_handoff`` (which starts MariaDB and makes the
bench database ``baolife_bench_handoff``). Two real :class:`App` workers run
in this process on that database with the database bus, each with
``--players`` connected players who keep playing (so ticks, frames and
saves go on); one more player is then handed from worker to worker
``--handoffs`` times: a client logs in on the other worker while the
current one plays, and the time from its ``login`` to its ``welcome`` is
one handoff (the old worker stops the player, saves it and releases it on
the way). Repeated for each bus poll interval of ``--polls``.

Per interval it prints the handoff p50/p95/p99/max, the bus reads and all
store calls per second of one worker over an idle stretch (players
connected, no handoffs), and checks that every handoff carried the life its
old client last saw (age in days): a lost game day fails the run.

Everything shares this process and its core with the players' clients, so
the figures are under load; compare the intervals with each other.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from baolife.app import App
from baolife.config import Settings


class Player:
    """One connection and the age (days) of the life it last saw."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.ids = 0
        self.age = -1
        self.player = 0
        self.token = ""
        self.bye: str | None = None

    async def send(self, kind: str, **fields: Any) -> int:
        self.ids += 1
        await self.ws.send_message(orjson.dumps({"type": kind, "id": self.ids, **fields}).decode())
        return self.ids

    async def until(self, ref: int) -> dict[str, Any]:
        """Read frames until an op answers ``ref``; that op."""
        while True:
            for op in await self.ops():
                if op.get("ref") == ref:
                    return op

    async def ops(self) -> list[dict[str, Any]]:
        frame = orjson.loads(await self.ws.get_message())
        for op in frame["ops"]:
            if op["op"] == "welcome":
                self.age = op["snapshot"]["age_days"]
                self.player = op["player"]
            elif op["op"] == "state" and "age_days" in op:
                self.age = op["age_days"]
            elif op["op"] == "registered":
                self.token = op["token"]
            elif op["op"] == "bye":
                self.bye = op["reason"]
        return list(frame["ops"])

    async def drain(self) -> None:
        """Read until the server closes the connection."""
        try:
            while True:
                await self.ops()
        except ConnectionClosed:
            return


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[Player]:
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws", message_queue_size=10_000) as ws:
        yield Player(ws)


async def keep_reading(player: Player) -> None:
    try:
        while True:
            await player.ops()
    except ConnectionClosed:
        return


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_interval(url: str, poll: float, players: int, handoffs: int, idle: float) -> dict[str, Any]:
    settings = Settings.defaults(
        ws_bind="127.0.0.1:0",
        http_bind="127.0.0.1:0",
        db_url=url,
        bus_url="db",
        bus_poll=poll,
        seed=7,
        conn_per_ip=1_000_000,
        register_per_ip_hour=1_000_000,
    )
    times: list[float] = []
    busy = 0
    lost: list[int] = []
    async with trio.open_nursery() as root, AsyncExitStack() as stack:
        workers: list[App] = []
        for _ in range(2):
            app = App(settings)
            await root.start(app.run)
            workers.append(app)
        for app in workers:
            for _ in range(players):
                p = await stack.enter_async_context(connect(app.ws_port or 0))
                await p.until(await p.send("register", name="Load"))
                root.start_soon(keep_reading, p)
        # The idle stretch: what the cluster costs the database with nothing moving.
        a = workers[0]
        calls0, polls0, t0 = a.store.statistics().calls, a.bus.polls, time.perf_counter()  # type: ignore[attr-defined]
        await trio.sleep(idle)
        seconds = time.perf_counter() - t0
        calls = (a.store.statistics().calls - calls0) / seconds
        polls = (a.bus.polls - polls0) / seconds  # type: ignore[attr-defined]

        current = await stack.enter_async_context(connect(workers[0].ws_port or 0))
        await current.until(await current.send("register", name="Handed"))
        token = current.token
        pauses = random.Random(7)
        for i in range(handoffs):
            # Playing a moment (out of step with ticks and polls).
            await trio.sleep(pauses.uniform(0.05, 0.3))
            nxt = await stack.enter_async_context(connect(workers[(i + 1) % 2].ws_port or 0))
            async with trio.open_nursery() as pair:
                pair.start_soon(current.drain)
                started = time.perf_counter()
                welcome = await nxt.until(await nxt.send("login", token=token))
                while welcome.get("code") == "busy":  # over the login's deadline: counted, tried again
                    busy += 1
                    welcome = await nxt.until(await nxt.send("login", token=token))
                times.append(time.perf_counter() - started)
            if welcome.get("op") != "welcome" or current.bye != "replaced":
                raise SystemExit(f"handoff {i}: {welcome} (old connection said bye {current.bye})")
            lost.append(max(0, current.age - welcome["snapshot"]["age_days"]))
            current = nxt
        # Logins without a handoff, for comparison: the same player logs in
        # again on the worker that holds it (the old connection logged out).
        plain: list[float] = []
        for _ in range(min(50, handoffs)):
            await current.send("logout")
            await current.drain()
            nxt = await stack.enter_async_context(connect(workers[handoffs % 2].ws_port or 0))
            started = time.perf_counter()
            welcome = await nxt.until(await nxt.send("login", token=token))
            plain.append(time.perf_counter() - started)
            current = nxt
        for app in workers:
            app.request_shutdown()
    return {
        "plain_p50": statistics.median(plain),
        "busy": busy,
        "poll": poll,
        "handoffs": len(times),
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "p99": percentile(times, 0.99),
        "max": max(times),
        "lost_days": sum(lost),
        "bus_reads_per_s": polls,
        "store_calls_per_s": calls,
    }


async def main(args: argparse.Namespace) -> int:
    rows = []
    for poll in [float(x) for x in args.polls.split(",")]:
        rows.append(await run_interval(args.url, poll, args.players, args.handoffs, args.idle))
    print(f"# bench_handoff: {platform.node()}, Python {platform.python_version()}, "
          f"{args.players} players per worker, {args.handoffs} handoffs per interval")  # fmt: skip
    print(" ".join(sys.argv))
    print(
        "| bus poll | handoffs | p50 | p95 | p99 | max | busy | lost days"
        " | plain login p50 | bus reads/s | store calls/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['poll'] * 1000:.0f} ms | {r['handoffs']} | {r['p50'] * 1000:.0f} ms | {r['p95'] * 1000:.0f} ms"
            f" | {r['p99'] * 1000:.0f} ms | {r['max'] * 1000:.0f} ms | {r['busy']} | {r['lost_days']}"
            f" | {r['plain_p50'] * 1000:.0f} ms"
            f" | {r['bus_reads_per_s']:.1f} | {r['store_calls_per_s']:.1f} |"
        )
    return 1 if any(r["lost_days"] for r in rows) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="mysql:// URL of the bench database")
    parser.add_argument("--players", type=int, default=200, help="connected players per worker (load)")
    parser.add_argument("--handoffs", type=int, default=200, help="handoffs per poll interval")
    parser.add_argument("--polls", default="0.05,0.1,0.25", help="bus poll intervals (seconds), comma-separated")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of the idle stretch measuring store calls")
    sys.exit(trio.run(main, parser.parse_args()))
