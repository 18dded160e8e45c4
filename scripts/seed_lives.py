"""Seed a store with players of every age, for load tests that log in real lives.

The load test's newborns are the smallest state a life has: no job, few
NPCs, a short story. Real players are of every age, and a player online at
a random moment is at a random moment of their play. So this script plays
``--templates`` accounts on the real engine with the simulation's bots
(:mod:`baolife.sim.bots`, the neutral policy, one tick a real second as in
``baolife simulate``), each for a number of seconds drawn evenly from 0 to
``--hours`` of play; an account whose life ends before that starts a new
life (``new_life``, as a player does) and plays on. Each also talks as the
load test's players do (``scripts/loadgen.mjs``: one of its lines to one of
its living NPCs every 100-140 s, the scripted NPC provider answering), so a
life's NPCs remember what it was told. Each stops with all it gathered:
NPCs and their memories, story, moments, prompts, cooldowns, job, money,
past lives. Without the talks, a load test's lives would start with empty
NPC memories and fill them for as long as a life lasts (an hour or two):
a rise that is the seeding's, not the server's.
The ages then follow the play time each stage of a life takes at the
content's pace (a median life is 1-2 hours). Then it creates ``--players``
accounts, each with a copy of a template (its own id and name), through the
store's own ``create_account``, and writes one login token per line to
``--tokens`` (player ``i`` of the load test logs in with line ``i``).

    scripts/seed_lives.py --players 19500 --db sqlite:////tmp/seed/server.db --tokens /tmp/seed/tokens

It prints one JSON object: the players made, their ages by stage, the mean
and largest saved state in bytes, and the seconds each part took.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter

import orjson
import trio

from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.ai.offline import ScriptedProvider
from baolife.db import open_store
from baolife.db.store import hash_token
from baolife.model import SCHEMA_VERSION, Player, dump_player, load_player
from baolife.sim.bots import NEUTRAL, ActionGuide, Bot
from baolife.tick.engine import SayJob, World

# The server's default game year (the setting ``year_days``).
YEAR_DAYS = 365
# What the load generator's players say, and how often (scripts/loadgen.mjs:
# LINES, and its ``say`` timer: first within 120 s, then every 100-140 s).
TALK_LINES = ("Hi!", "How are you?", "I got a new job.", "Want to hang out?", "I miss you.")
TALK_FIRST, TALK_EVERY = (0, 120), (100, 140)


def spread_life(world: World, pid: int, rng: random.Random, year_days: int = YEAR_DAYS) -> Player:
    """A new life set to a random age of a whole life (0-80 years), some
    adults with a job, its next event check within 40 days: the cheap mix of
    ages the tick benchmarks use (``live_templates`` plays real lives)."""
    p = world.rules.new_life(pid, f"Player {pid}", 1)
    p.age_days = rng.randint(0, 80 * year_days)
    if p.age_days > 18 * year_days and rng.random() < 0.6:
        p.job = rng.choice(list(world.content.jobs))
        p.job_since = p.age_days - rng.randint(0, 3000)
    p.next_check = p.age_days + rng.randint(1, 40)
    return p


def spread_world(players: int, seed: int, year_days: int = YEAR_DAYS) -> World:
    """A world (one tick a game day) with ``players`` lives of :func:`spread_life`
    joined at tick 0 and their joining output taken: what the step and send
    benchmarks play on."""
    content = content_pkg.load()
    rng = random.Random(seed)  # noqa: S311 - game dice, not secrets
    world = World(content, day_ticks=1, year_days=year_days, rng=random.Random(seed))  # noqa: S311
    for pid in range(1, players + 1):
        world.join(spread_life(world, pid, rng, year_days), 0)
    world.take_output()
    return world


def live_templates(count: int, hours: float, seed: int) -> list[Player]:
    """``count`` accounts, each played for a random time up to ``hours``."""
    content = content_pkg.load()
    rng = random.Random(f"seed-lives-{seed}")  # noqa: S311 - game dice, not secrets
    jobs: list[SayJob] = []

    def submit(job: SayJob) -> bool:
        jobs.append(job)
        return True

    world = World(content, day_ticks=1, year_days=YEAR_DAYS, rng=rng, submit_say=submit)
    npcs = ScriptedProvider(content)
    guide = ActionGuide(content)
    taken: Counter[str] = Counter()
    bots: dict[int, Bot] = {}
    ends: dict[int, int] = {}
    talks: dict[int, int] = {}
    done: list[Player] = []
    for pid in range(1, count + 1):
        world.join(world.rules.new_life(pid, f"Seed {pid}", 1), 0)
        bots[pid] = Bot(pid, NEUTRAL, guide, rng, 0, taken)
        ends[pid] = int(rng.uniform(0, hours * 3600))
        talks[pid] = int(rng.uniform(*TALK_FIRST))
    tick = 0
    while bots:
        tick += 1
        world.advance(tick)
        for pid in list(bots):
            p = world.players[pid]
            if tick >= ends[pid]:
                del bots[pid], ends[pid]
                world.leave(pid)
                done.append(p)
            elif not p.alive:
                world.apply(pid, wire.NewLife(name=f"Seed {pid}"), tick)
            else:
                if tick >= talks[pid]:
                    talks[pid] = tick + int(rng.uniform(*TALK_EVERY))
                    living = [npc.id for npc in p.npcs if npc.alive]
                    if living:
                        world.apply(pid, wire.Say(npc=rng.choice(living), text=rng.choice(TALK_LINES)), tick)
                if bots[pid].wants_turn(p, tick):
                    bots[pid].on_tick(world, p, tick)
        # Replies come back by the next tick, as the offline provider's do.
        for job in jobs:
            world.npc_reply(job.player, job.life, job.npc, job.ref, npcs.line(job))
        jobs.clear()
        world.take_output()
        world.take_changed()
    return done


async def seed(args: argparse.Namespace) -> dict[str, object]:
    started = time.perf_counter()
    templates = live_templates(args.templates, args.hours, args.seed)
    lived = time.perf_counter() - started
    docs = [dump_player(p) for p in templates]
    stage_of = World(content_pkg.load(), day_ticks=1, year_days=YEAR_DAYS, rng=random.Random(0)).rules.stage  # noqa: S311
    by_stage: Counter[str] = Counter()
    sizes: list[int] = []
    tokens: list[str] = []
    started = time.perf_counter()
    async with open_store(args.db, pool_size=1, root=".") as store:
        await store.migrate()
        for i in range(args.players):
            template = templates[i % len(templates)]
            name = f"Load {i}"
            token = f"seed-{args.seed}-{i}"

            def first_state(pid: int, doc: bytes = docs[i % len(docs)], name: str = name) -> tuple[bytes, int]:
                player = load_player(doc)
                player.id, player.name = pid, name
                data = dump_player(player)
                sizes.append(len(data))
                return data, SCHEMA_VERSION

            await store.create_account(name, hash_token(token), first_state)
            tokens.append(token)
            by_stage[stage_of(template.age_days)] += 1
    stored = time.perf_counter() - started
    await trio.Path(args.tokens).write_text("\n".join(tokens) + "\n")
    return {
        "players": args.players,
        "templates": len(templates),
        "stages": {stage: by_stage[stage] for stage in content_pkg.load().stage_order},
        "lives_per_account_mean": round(statistics.fmean(p.life for p in templates), 2),
        "npc_turns_mean": round(statistics.fmean(sum(len(n.memory) for n in p.npcs) for p in templates), 1),
        "state_bytes_mean": round(statistics.fmean(sizes)),
        "state_bytes_max": max(sizes),
        "seconds_living": round(lived, 1),
        "seconds_storing": round(stored, 1),
        "command": " ".join(sys.argv),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=2000, help="accounts to create")
    parser.add_argument("--templates", type=int, default=500, help="distinct lives lived (copied over the players)")
    parser.add_argument("--hours", type=float, default=4.0, help="most real hours an account has played")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", required=True, help="store URL (sqlite:///... or mysql://...)")
    parser.add_argument("--tokens", required=True, help="file to write one login token per line to")
    args = parser.parse_args()
    if args.players < 1 or args.templates < 1 or not 0 < args.hours <= 48:
        parser.error("--players and --templates must be at least 1, --hours in (0, 48]")
    print(orjson.dumps(trio.run(seed, args), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
