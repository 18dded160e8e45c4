#!/usr/bin/env python3
"""Cost of one player-day in the engine (``World.advance`` -> ``World._day``).

Newborn players are advanced day by day, one day per tick, for ``--years``
game years with the shipped content, and answer each prompt the day it
opens with a random choice, as players who are playing do. Prints
microseconds per player-day (the days and the answers), the minimum over
``--repeat`` runs (the machine is shared: the minimum is the least disturbed
run).

With ``--against DIR`` (a checkout of another revision, e.g. made with
``git worktree add /tmp/base main``) it runs that revision and this one
alternately in child processes and prints the ratio, so both figures come
from the same minutes of the same machine.

    python scripts/bench_days.py --players 400 --years 40 --repeat 3 --against /tmp/base
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def measure(players: int, years: int, seed: int) -> tuple[int, float, float]:
    """(player_days, seconds, evaluations per player-day) of one run."""
    from baolife import protocol as wire
    from baolife.content import load
    from baolife.tick.engine import World

    world = World(load(), day_ticks=1, year_days=365, rng=random.Random(seed))
    choose = random.Random(seed + 1).choice
    for pid in range(1, players + 1):
        world.join(world.rules.new_life(pid, f"Bench {pid}", 1), 0)
    world.take_output()
    world.take_changed()
    started = time.perf_counter()
    for tick in range(1, years * 365 + 1):
        world.advance(tick)
        for pid, ops in world.take_output().items():
            for op in ops:
                if isinstance(op, wire.PromptOp):
                    key = choose(op.choices)["key"]
                    world.apply(pid, wire.Answer(prompt=op.id, choice=key), tick)
        world.take_output()
        world.take_changed()
    seconds = time.perf_counter() - started
    stats = world.statistics()
    return stats.player_days, seconds, stats.evaluations / max(1, stats.player_days)


def _child(root: Path, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--players", str(args.players)]
    cmd += ["--years", str(args.years), "--seed", str(args.seed)]
    out = subprocess.run(cmd, env=env, cwd=root, check=True, capture_output=True, text=True).stdout
    return float(out.split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=400)
    parser.add_argument("--years", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout to compare with, run alternately")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        days, seconds, evals = measure(args.players, args.years, args.seed)
        print(f"{seconds / days * 1e6:.4f} {days} {evals:.4f}")
        return 0
    roots = {"this": HERE}
    if args.against:
        roots = {"base": args.against.resolve(), "this": HERE}
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, root in roots.items():
            us = _child(root, args)
            best[name] = min(us, best.get(name, us))
    print(" ".join(sys.argv))
    for name, us in best.items():
        print(f"{name}: {us:.2f} us per player-day (best of {args.repeat}; {args.players} players, {args.years} years)")
    if "base" in best:
        print(f"ratio this/base: {best['this'] / best['base']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
