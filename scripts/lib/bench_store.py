"""Benchmark of player saves on MySQL/MariaDB: the batched write-behind saver
against one UPDATE per player with autocommit, in one run.

Run it through ``scripts/bench_store`` (which starts MariaDB and makes the
bench database). It drops and recreates BaoLife's tables in the database of
``--url``: never point it at a database you care about.

Players are of realistic size: a few dozen lives are simulated with the real
game rules (days, events, actions, prompts answered, conversations with NPCs
answered by the scripted provider) to ages between 5 and 60 years, then
copied to ``--players`` distinct players with their own money and stats.

Figures, all measured in this run:

- batched: ``Saver.flush()`` of every player dirty (serialization included),
  ``--rounds`` times; saves/s, and the longest the trio loop went without
  running other tasks during a flush (what a tick would have waited);
- row-by-row: one autocommit ``UPDATE ... WHERE id AND epoch`` per player
  through the same pool and bridge, its state serialized, compressed and sent
  as the store does, one at a time, then ``--pool`` at a time;
- the database's share of the batched path: the store's batch statements
  with the states serialized and compressed beforehand, the fastest any
  batched flush could be here, and so the ratio's ceiling on this machine;
- the ratios, and the targets: batched at least 10x row-by-row, a full flush
  within one save interval (5 s).

With ``--latency-ms 1,10,50`` the store is reached through the test proxy
(tests/db/tcp_proxy.py, in this process, as ``scripts/bench_login`` does),
which holds the database that many milliseconds of round trip away and counts
round trips on the wire; at each latency the batched flushes are timed and
their round trips per save batch counted, with the load average beside each
figure. The row-by-row path and the database's share are not run then (at
50 ms one UPDATE a player is minutes), nor are the targets judged. The
package measured is the ``baolife`` first on ``sys.path`` (its path is
printed): ``PYTHONPATH`` picks a copy of an earlier tree for a before/after.

One piece: a benchmark read from top to bottom (the players it makes, the
database it fills, each measurement and the lines it prints), so that what
a printed figure measures is found next to where it is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

import baolife
from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.ai.offline import ScriptedProvider
from baolife.db import mysql as mysql_module
from baolife.db.mysql import MysqlStore, open_mysql
from baolife.db.mysql_dialect import CODEC_ZSTD, encode_state
from baolife.db.store import SaveRow
from baolife.model import SCHEMA_VERSION, Player, dump_player, load_player
from baolife.players import Directory, Saver
from baolife.tick.engine import SayJob, World

# The proxy comes from this tree's tests/; appended, so that the baolife of
# PYTHONPATH (an earlier tree, for a before/after) stays the one measured.
sys.path.append(str(Path(__file__).resolve().parents[2]))

from tests.db.mysql_admin import reset_database  # noqa: E402
from tests.db.tcp_proxy import TcpProxy, proxied  # noqa: E402

INSERT_ACCOUNT = "INSERT INTO accounts (id, token_hash, name, created_at) VALUES (%s, %s, %s, %s)"
INSERT_PLAYER = "INSERT INTO players (id, state, schema_version, epoch, updated_at) VALUES (%s, %s, %s, %s, %s)"
# The state is stored and sent as in the batched statement (compressed, as
# hex), so the two paths differ only in batching.
UPDATE_ONE = (
    "UPDATE players SET state = UNHEX(%s), state_codec = %s, schema_version = %s, updated_at = %s"
    " WHERE id = %s AND epoch = %s"
)
SAVE_INTERVAL = 5.0
LINES = (
    "hi, how are you doing today?",
    "I passed the exam! Can you believe it?",
    "what do you think I should do about my job?",
    "thank you for always being there for me",
    "do you remember when we went to the beach and it rained all afternoon?",
    "I am worried about money this month, everything costs more than last year",
    "let's have dinner on Sunday, I will cook",
    "how was your week?",
)


# --------------------------------------------------------------------- realistic players


# Share of days on which a player says something to an NPC, by kind of player,
# and how common each kind is: most talk now and then, a few a lot.
CHAT_PROFILES = {
    "mixed": ((0.002, 0.5), (0.01, 0.35), (0.03, 0.15)),
    "heavy": ((0.03, 1.0),),
}


def simulate_templates(count: int, seed: int, chat: str) -> list[Player]:
    """``count`` players lived with the game's rules to 5..60 years of age,
    talking to their NPCs as often as the ``chat`` profile says."""
    content = content_pkg.load()
    rng = random.Random(seed)  # noqa: S311 - game dice
    jobs: list[SayJob] = []
    world = World(content, day_ticks=1, year_days=365, rng=rng, submit_say=lambda job: jobs.append(job) or True)
    provider = ScriptedProvider(content)
    actions = sorted(content.actions)
    target = {}
    talk = {}
    rates, weights = zip(*CHAT_PROFILES[chat], strict=True)
    for pid in range(1, count + 1):
        player = world.rules.new_life(pid, f"Template {pid}", 1)
        world.join(player, 0)
        target[pid] = rng.randint(5 * 365, 60 * 365)
        talk[pid] = rng.choices(rates, weights)[0]
    done: list[Player] = []
    tick = 0
    while world.players:
        tick += 1
        world.advance(tick)
        for pid, p in list(world.players.items()):
            if not p.alive or p.age_days >= target[pid]:
                done.append(p)
                world.leave(pid)
                continue
            roll = rng.random()
            if roll < 0.04:
                world.apply(pid, wire.Act(action=rng.choice(actions)), tick)
            elif roll < 0.08 and p.prompts:
                prompt = p.prompts[0]
                event = content.events[prompt.event]
                world.apply(pid, wire.Answer(prompt=prompt.id, choice=rng.choice(event.choices).key), tick)
            if rng.random() < talk[pid] and p.npcs:
                npc = rng.choice(p.npcs)
                if npc.alive and pid not in world.saying:
                    world.apply(pid, wire.Say(npc=npc.id, text=rng.choice(LINES)), tick)
        for job in jobs:
            world.npc_reply(job.player, job.life, job.npc, None, provider.line(job))
        jobs.clear()
        world.take_output()
        world.take_changed()
    return done


def make_players(templates: Sequence[Player], count: int, first_id: int, seed: int) -> dict[int, Player]:
    """``count`` distinct players, each a copy of a template with its own numbers."""
    rng = random.Random(seed)  # noqa: S311 - game dice
    blobs = [dump_player(t) for t in templates]
    out = {}
    for i in range(count):
        pid = first_id + i
        p = load_player(blobs[i % len(blobs)])
        p.id = pid
        p.name = f"Player {pid}"
        p.money += rng.randint(0, 100_000)
        p.stats.happiness = rng.randint(0, 100)
        out[pid] = p
    return out


# --------------------------------------------------------------------- database setup


async def _insert_body(conn: Any, ids: list[int]) -> None:
    cur = await conn.cursor()
    now = int(time.time())
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        await cur.execute("BEGIN")
        await cur.executemany(INSERT_ACCOUNT, [(pid, secrets.token_bytes(32), f"Player {pid}", now) for pid in part])
        await cur.executemany(INSERT_PLAYER, [(pid, None, 0, 1, now) for pid in part])
        await cur.execute("COMMIT")


async def _update_one(conn: Any, row: SaveRow, now: int) -> int:
    cur = await conn.cursor()
    stored = encode_state(row.state)
    await cur.execute(UPDATE_ONE, (stored.hex(), CODEC_ZSTD, row.schema_version, now, row.player_id, row.epoch))
    return int(cur.rowcount)


def live_a_day(players: dict[int, Player]) -> None:
    """Change every player, so every save really writes a new state."""
    for p in players.values():
        p.age_days += 1
        p.money += 1


async def _server_facts(conn: Any) -> tuple[str, str]:
    cur = await conn.cursor()
    await cur.execute("SELECT VERSION(), @@innodb_flush_log_at_trx_commit")
    version, flush = await cur.fetchone()
    return str(version), str(flush)


# --------------------------------------------------------------------- measurements


class StallMeter:
    """The longest the trio loop went without running this task (it asks to
    wake every ``every`` seconds): what a tick would have waited."""

    def __init__(self, every: float = 0.005) -> None:
        self.every = every
        self.worst = 0.0

    async def run(self) -> None:
        while True:
            asked = trio.current_time()
            await trio.sleep(self.every)
            self.worst = max(self.worst, trio.current_time() - asked - self.every)


async def batched_rounds(
    store: MysqlStore, players: dict[int, Player], rounds: int, batch: int, in_flight: int
) -> list[dict[str, float]]:
    directory = Directory(store, lambda pid, name: players[pid], capacity=len(players) * 2)
    for pid, player in players.items():
        directory.create(pid, player.name)
        directory.release(pid)
    saver = Saver(store, directory, interval=SAVE_INTERVAL, batch=batch, in_flight=in_flight)
    results = []
    for _ in range(rounds):
        live_a_day(players)
        directory.mark_dirty(set(players))
        assert directory.dirty_count == len(players)
        meter = StallMeter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(meter.run)
            started = time.perf_counter()
            ok = await saver.flush()
            seconds = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        assert ok and directory.dirty_count == 0, "a batched flush failed"
        results.append({"seconds": seconds, "stall": meter.worst})
    assert saver.fenced == 0
    return results


async def database_share(store: MysqlStore, players: dict[int, Player], batch: int, in_flight: int) -> float:
    """Seconds for the batched path's database work alone: the store's own
    batch body (lock, multi-row insert, commit; hex encoding included) for
    every player, ``in_flight`` batches at once, with the states serialized
    and compressed before the clock starts. No code of ours can make a batched
    flush with as many batches in flight faster than this on this machine."""
    live_a_day(players)
    rows = mysql_module._compressed([SaveRow(pid, dump_player(p), SCHEMA_VERSION, 1) for pid, p in players.items()])
    now = int(time.time())
    limiter = trio.CapacityLimiter(in_flight)

    async def write(chunk: list[SaveRow]) -> None:
        async with limiter:
            refused = await store._call("save", 60, mysql_module._save, store._bound(60), chunk, now)
        assert not refused, f"{len(refused)} rows refused"

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for start in range(0, len(rows), batch):
            nursery.start_soon(write, rows[start : start + batch])
    return time.perf_counter() - started


async def row_by_row(store: MysqlStore, players: dict[int, Player], concurrency: int) -> float:
    """Seconds to save every player with one autocommit UPDATE each
    (serialization included, as in the saver's flush)."""
    live_a_day(players)
    now = int(time.time())
    queue = sorted(players, reverse=True)
    updated = 0

    async def worker() -> None:
        nonlocal updated
        while queue:
            pid = queue.pop()
            row = SaveRow(pid, dump_player(players[pid]), SCHEMA_VERSION, 1)
            # One bridge crossing per statement: the store's own path, minus the batching.
            count = await store._call("update_one", 30, _update_one, row, now)
            updated += count  # not `updated += await ...`: that reads `updated` before the await

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    seconds = time.perf_counter() - started
    assert updated == len(players), f"only {updated} of {len(players)} rows updated"
    return seconds


def load() -> str:
    """The machine's load average (1, 5, 15 minutes), printed beside each figure."""
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def far_rounds(
    proxy: TcpProxy, store: MysqlStore, players: dict[int, Player], args: argparse.Namespace
) -> dict[float, float]:
    """Batched flushes with the database ``args.latency_ms`` away, each
    latency in turn: saves per second (median of the rounds) by latency."""
    batches = -(-len(players) // args.batch)
    # Untimed, at no latency: the pool opens its connections (their
    # handshakes would count as the first round's round trips).
    await batched_rounds(store, players, 1, args.batch, args.in_flight)
    rates = {}
    for ms in args.latency_ms:
        proxy.set_latency(ms / 1000)
        trips = proxy.round_trips
        rounds = await batched_rounds(store, players, args.rounds, args.batch, args.in_flight)
        per_batch = (proxy.round_trips - trips) / (len(rounds) * batches)
        for i, r in enumerate(rounds, 1):
            print(
                f"round trip {ms:g} ms, batched round {i}: {len(players)} players in {r['seconds']:.2f} s"
                f" = {len(players) / r['seconds']:.0f} saves/s; longest loop stall {r['stall'] * 1000:.1f} ms; {load()}"
            )
        median = statistics.median(r["seconds"] for r in rounds)
        rates[ms] = len(players) / median
        print(
            f"round trip {ms:g} ms: median {rates[ms]:.0f} saves/s, {per_batch:.2f} round trips per save batch"
            f" of {args.batch} (on the wire); {load()}"
        )
    proxy.set_latency(0)
    return rates


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError as exc:
        return f"unknown ({exc.strerror})"
    return platform.processor() or "unknown"


async def prepare(store: MysqlStore, players: dict[int, Player], pool: int) -> None:
    """Tables (just made, see ``reset_database``) holding ``players`` (no states yet)."""
    await store.migrate()
    await store._call("insert", 300, _insert_body, sorted(players))
    version, flush = await store._call("facts", 10, _server_facts)
    print(f"server: MariaDB/MySQL {version}, innodb_flush_log_at_trx_commit={flush}, pool {pool}")


async def main(args: argparse.Namespace) -> int:
    print(f"command: scripts/bench_store {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    started = time.perf_counter()
    templates = simulate_templates(args.templates, args.seed, args.chat)
    players = make_players(templates, args.players, 1, args.seed)
    sizes = sorted(len(dump_player(p)) for p in players.values())
    print(
        f"players: {len(players)} from {len(templates)} simulated lives, chat profile {args.chat}"
        f" (ages {min(t.age_days for t in templates) // 365}-{max(t.age_days for t in templates) // 365} years,"
        f" {sum(len(t.npcs) for t in templates) / len(templates):.1f} NPCs each)"
        f" in {time.perf_counter() - started:.1f} s; save size bytes:"
        f" mean {statistics.mean(sizes):.0f}, median {sizes[len(sizes) // 2]},"
        f" p95 {sizes[int(len(sizes) * 0.95)]}, max {sizes[-1]}"
    )
    started = time.perf_counter()
    for p in players.values():
        dump_player(p)
    serialize = time.perf_counter() - started
    print(
        f"serialization alone (dump_player, paid by both paths): {serialize:.2f} s"
        f" = {serialize / len(players) * 1e6:.0f} us per player"
    )
    print(f"package: {Path(baolife.__file__).parent}")
    if args.latency_ms:
        async with proxied(args.url) as proxy, open_mysql(proxy.url(args.url), pool_size=args.pool) as store:
            await prepare(store, players, args.pool)
            await far_rounds(proxy, store, players, args)
        return 0
    async with open_mysql(args.url, pool_size=args.pool) as store:
        await prepare(store, players, args.pool)

        rounds = await batched_rounds(store, players, args.rounds, args.batch, args.in_flight)
        best = min(r["seconds"] for r in rounds)
        median = statistics.median(r["seconds"] for r in rounds)
        for i, r in enumerate(rounds, 1):
            print(
                f"batched round {i}: {len(players)} players in {r['seconds']:.2f} s"
                f" = {len(players) / r['seconds']:.0f} saves/s; longest loop stall {r['stall'] * 1000:.1f} ms"
            )

        floor = await database_share(store, players, args.batch, args.in_flight)
        sequential = await row_by_row(store, players, 1)
        concurrent = await row_by_row(store, players, args.pool)

    batched_rate = len(players) / median
    seq_rate = len(players) / sequential
    conc_rate = len(players) / concurrent
    print(f"row-by-row, one at a time: {sequential:.2f} s = {seq_rate:.0f} saves/s")
    print(f"row-by-row, {args.pool} at a time: {concurrent:.2f} s = {conc_rate:.0f} saves/s")
    print(f"batched (median of {len(rounds)}): {median:.2f} s = {batched_rate:.0f} saves/s")
    print(f"ratio batched / row-by-row one at a time: {batched_rate / seq_rate:.1f}x")
    print(f"ratio batched / row-by-row {args.pool} at a time: {batched_rate / conc_rate:.1f}x")
    print(
        f"database share of the batched path (states serialized and compressed beforehand):"
        f" {floor:.2f} s = {len(players) / floor:.0f} saves/s; the ratio could not exceed"
        f" {sequential / floor:.1f}x one at a time even if our serialization and compression cost nothing"
    )
    ok_ratio = batched_rate / seq_rate >= 10
    ok_flush = median <= SAVE_INTERVAL
    print(f"target batched >= 10x row-by-row: {'PASS' if ok_ratio else 'FAIL'}")
    print(
        f"target full flush of {len(players)} within {SAVE_INTERVAL:g} s:"
        f" {'PASS' if ok_flush else 'FAIL'} (median {median:.2f} s, best {best:.2f} s)"
    )
    return 0 if ok_ratio and ok_flush else 1


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench_store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="mysql://user:pw@host:port/database (its tables are dropped!)")
    parser.add_argument("--players", type=int, default=10_000, help="dirty players to save (default 10000)")
    parser.add_argument("--templates", type=int, default=64, help="lives simulated to make them (default 64)")
    parser.add_argument("--rounds", type=int, default=3, help="batched flushes to time (default 3)")
    parser.add_argument("--batch", type=int, default=500, help="players per save batch (default 500, as save_batch)")
    parser.add_argument("--in-flight", type=int, default=2, help="batches written at once by the saver (default 2)")
    parser.add_argument("--pool", type=int, default=8, help="connection pool size (default 8, as db_pool)")
    parser.add_argument("--seed", type=int, default=4, help="random seed of the simulated lives")
    parser.add_argument(
        "--chat", choices=sorted(CHAT_PROFILES), default="mixed", help="how much players talk to NPCs (default mixed)"
    )
    parser.add_argument(
        "--latency-ms",
        type=latencies,
        default=[],
        help="round trips to hold the database away, comma-separated (e.g. 1,10,50): batched flushes only,"
        " through the test proxy",
    )
    return parser.parse_args(argv)


def latencies(text: str) -> list[float]:
    """``--latency-ms``: milliseconds, comma-separated, each 0-10000."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of milliseconds: {text!r}") from None
    if not all(0 <= v <= 10_000 for v in values):
        raise argparse.ArgumentTypeError(f"each latency must be 0-10000 ms: {text!r}")
    return values


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    reset_database(arguments.url)  # every table of ours, made again by the migrations
    sys.exit(trio.run(main, arguments))
