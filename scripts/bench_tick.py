"""CPU per tick for N online players with the full content.

Runs the real tick (``TickLoop.step``: inbox, days, frame encoding, hand-off
to sessions) with sessions that drop frames, so the figure is the game's
cost without the network. Players start at ages spread over a whole life,
some with jobs; each tick carries the load generator's traffic mix: a ping
every ~5 s, an answer to every prompt after 1-5 s, an action every ~20 s
per player.

``--lives mixed`` puts lives played by the simulation's bots online instead
(scripts/seed_lives.py, the load test's ``--lives mixed``): grown lives with
their NPCs, stories and past lives, whose days cost more than a newborn's.

Prints mean, p50, p99 and max process CPU per tick, and per 1,000 players,
for each N, with the command and the machine. Target: at most 10 ms per tick
per 1,000 players.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from typing import Any

import orjson
from seed_lives import live_templates, spread_life
from serverlib import machine

from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.app import GC_THRESHOLDS
from baolife.model import dump_player, load_player
from baolife.tick.engine import World
from baolife.tick.loop import Attach, Deliver, Inbox, TickLoop


class NullSession:
    """A connection that takes every frame and notes the prompts in it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.player_id: int | None = None
        self.frames = 0
        self.prompts: list[tuple[int, str]] = []

    def send_frame(self, frame: bytes) -> bool:
        self.frames += 1
        if b'"op":"prompt"' in frame:
            for op in orjson.loads(frame)["ops"]:
                if op["op"] == "prompt":
                    self.prompts.append((op["id"], op["choices"][0]["key"]))
        return True

    def close(self, code: int, reason: str) -> None:
        pass


def run(
    players: int, ticks: int, tick_hz: float, day_ticks: int, seed: int, templates: list[bytes] | None = None
) -> dict[str, Any]:
    content = content_pkg.load()
    rng = random.Random(seed)
    world = World(content, day_ticks=day_ticks, year_days=365, rng=random.Random(seed))
    inbox = Inbox(limit=10**7)
    loop = TickLoop(world, inbox, tick_hz=tick_hz, mark_dirty=lambda pids: None)
    sessions = []
    for pid in range(1, players + 1):
        if templates:
            # A life played by the simulation's bots (scripts/seed_lives.py): NPCs, story, cooldowns...
            p = load_player(templates[pid % len(templates)])
            p.id = pid
        else:
            p = spread_life(world, pid, rng)
        s = NullSession(pid)
        sessions.append(s)
        loop.add_session(s)
        inbox.put(Attach(s, p))
    loop.step(1, 0.0)  # joins (welcome snapshots) are a login cost, not a tick cost
    per_tick = tick_hz
    actions = ["study", "exercise", "play", "find_job", "see_doctor", "meditate", "go_out"]
    cpu: list[float] = []
    gc.collect()
    for tick in range(2, ticks + 2):
        for s in sessions:
            r = rng.random()
            if r < 1 / (5 * per_tick):
                inbox.put(Deliver(s, wire.Ping(ref=tick)))
            elif r < 1 / (5 * per_tick) + 1 / (20 * per_tick):
                inbox.put(Deliver(s, wire.Act(action=rng.choice(actions), ref=tick)))
            if s.prompts and rng.random() < 1 / (3 * per_tick):
                prompt, key = s.prompts.pop()
                inbox.put(Deliver(s, wire.Answer(prompt=prompt, choice=key, ref=tick)))
        started = time.process_time()
        loop.step(tick, tick / tick_hz)
        cpu.append(time.process_time() - started)
    cpu.sort()
    mean = statistics.fmean(cpu)
    return {
        "players": players,
        "ticks": ticks,
        "frames_per_tick": round(sum(s.frames for s in sessions) / (ticks + 1), 1),
        "cpu_ms_mean": round(1000 * mean, 3),
        "cpu_ms_p50": round(1000 * cpu[len(cpu) // 2], 3),
        "cpu_ms_p99": round(1000 * cpu[int(len(cpu) * 0.99)], 3),
        "cpu_ms_max": round(1000 * cpu[-1], 3),
        "cpu_ms_mean_per_1000_players": round(1000 * mean * 1000 / players, 3),
        "cpu_ms_p99_per_1000_players": round(1000 * cpu[int(len(cpu) * 0.99)] * 1000 / players, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU per tick for N online players with the full content.")
    parser.add_argument("--players", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ticks", type=int, default=600)
    parser.add_argument("--tick-hz", type=float, default=10)
    parser.add_argument("--day-ticks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lives",
        choices=("spread", "mixed"),
        default="spread",
        help="spread: new lives set to random ages (some with jobs); mixed: lives played by the simulation's bots "
        "(scripts/seed_lives.py), with their NPCs, stories and past lives",
    )
    parser.add_argument("--templates", type=int, default=100, help="distinct lives played with --lives mixed")
    args = parser.parse_args()
    templates = None
    if args.lives == "mixed":
        templates = [dump_player(p) for p in live_templates(args.templates, 4.0, args.seed)]
    gc.set_threshold(*GC_THRESHOLDS)  # as the server sets them
    results = [run(n, args.ticks, args.tick_hz, args.day_ticks, args.seed, templates) for n in args.players]
    report = {
        "command": " ".join(["scripts/bench_tick", *sys.argv[1:]]),
        "lives": args.lives,
        "machine": machine(),
        "target_cpu_ms_per_tick_per_1000_players": 10,
        "gc_thresholds": gc.get_threshold(),
        "results": results,
        "meets_target": all(r["cpu_ms_p99_per_1000_players"] <= 10 for r in results),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if report["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
