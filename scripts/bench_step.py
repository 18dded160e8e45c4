"""CPU per game step of one player: ``World.advance`` alone, full content.

Players of ages spread over a whole life (some with jobs, random-event
checks coming as in play), ``day_ticks=1`` so every player steps every tick,
no commands: the engine's own cost of a step (quiet days in bulk, busy days
in full, the ops), which ``scripts/bench_tick`` measures together with
commands and frame encoding. Prints microseconds of process CPU per step
(best of ``--repeat`` runs: the machine is shared) and the share of steps
that ran a day in full. Compare two trees with ``PYTHONPATH=<tree>``.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson
from seed_lives import spread_world
from serverlib import machine

YEAR = 365


def run(players: int, ticks: int, seed: int) -> tuple[float, float]:
    """(CPU microseconds per step, share of player-days run in full) of one run."""
    world = spread_world(players, seed, YEAR)
    steps = 0
    started = time.process_time()
    for tick in range(1, ticks + 1):
        world.advance(tick)
        steps += len(world.take_output())
        world.take_changed()
    cpu = time.process_time() - started
    stats = world.statistics()
    return 1e6 * cpu / steps, stats.busy_days / max(1, stats.player_days)


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU per game step of one player (World.advance alone).")
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    runs = [run(args.players, args.ticks, args.seed) for _ in range(args.repeat)]
    report = {
        "command": " ".join(["scripts/bench_step.py", *sys.argv[1:]]),
        "machine": machine(),
        "us_per_step_best": round(min(r[0] for r in runs), 2),
        "us_per_step_runs": [round(r[0], 2) for r in runs],
        "busy_share_of_player_days": round(runs[0][1], 4),
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
