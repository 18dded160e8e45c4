"""Memory of a population of lives of every age as it plays on, for simulated hours.

The load test's long runs (``scripts/loadtest --interval``) say whether a
server's memory levels off, but thirty minutes of wall time are thirty
minutes of play. This plays the same population without the network, as
fast as the tick runs: ``--players`` lives seeded as the load test seeds
them (:func:`seed_lives.live_templates`, ``--templates`` distinct lives,
copied), online in a real :class:`~baolife.tick.loop.TickLoop` at 10 ticks a
game second, doing what the load generator's players do
(``scripts/loadgen.mjs``): a ping every ~5 s, an action every ~20 s, an
answer to a prompt after a few seconds, one of its lines to a living NPC
every 100-140 s (the scripted NPC provider answering on the next tick), and
a new life after each death. Every ``--every`` simulated minutes it prints,
after a full collection, Python's allocated blocks, the C heap in use
(glibc's ``mallinfo2``), and what the lives hold on average (state bytes,
age, NPCs, past lives, story lines).

With ``--trace``, ``tracemalloc`` runs from the first sample on (several
times slower) and the end prints the allocation sites that grew most
between the second sample and the last, by file and line.

    PYTHONPATH=. .venv/bin/python scripts/bench_aging.py --players 600 --minutes 50 --every 10 --trace

Prints the command, the machine, one JSON line a sample, then the growth.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import random
import sys
import time
import tracemalloc
from typing import Any

import orjson
from bench_tick import NullSession
from seed_lives import TALK_EVERY, TALK_LINES, live_templates
from serverlib import machine

from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.ai.offline import ScriptedProvider
from baolife.model import dump_player, load_player
from baolife.tick.engine import SayJob, World
from baolife.tick.loop import Attach, Deliver, Inbox, NpcReply, TickLoop

TICK_HZ = 10
ACTIONS = ("study", "play", "exercise", "meditate", "see_doctor", "find_job", "go_out", "work_hard")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ]


def _heap_in_use() -> Any:
    """A function giving the C heap's bytes in use (glibc), or None elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return lambda: libc.mallinfo2().uordblks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--templates", type=int, default=500, help="distinct lives seeded (the load test's default)")
    parser.add_argument("--minutes", type=int, default=120, help="simulated minutes of play")
    parser.add_argument("--every", type=int, default=10, help="simulated minutes between samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trace", action="store_true", help="tracemalloc: print what grew between samples 2 and last")
    args = parser.parse_args()
    print(orjson.dumps({"command": " ".join(["scripts/bench_aging.py", *sys.argv[1:]]), "machine": machine()}).decode())
    started = time.perf_counter()
    templates = [dump_player(p) for p in live_templates(args.templates, 4.0, args.seed)]
    content = content_pkg.load()
    rng = random.Random(args.seed)  # noqa: S311 - game dice
    jobs: list[SayJob] = []

    def submit(job: SayJob) -> bool:
        jobs.append(job)
        return True

    world = World(content, day_ticks=10, year_days=365, rng=random.Random(args.seed), submit_say=submit)
    provider = ScriptedProvider(content)
    inbox = Inbox(limit=10**7)
    loop = TickLoop(world, inbox, tick_hz=TICK_HZ, mark_dirty=lambda pids: None)
    sessions: list[NullSession] = []
    for pid in range(1, args.players + 1):
        player = load_player(templates[pid % len(templates)])
        player.id = pid
        session = NullSession(pid)
        sessions.append(session)
        loop.add_session(session)
        inbox.put(Attach(session, player))
    loop.step(1, 0.0)
    talk_at = {s.pid: rng.randint(1, 120 * TICK_HZ) for s in sessions}
    heap = _heap_in_use()
    snapshots: list[tracemalloc.Snapshot] = []

    def sample(tick: int) -> None:
        gc.collect()
        lives = list(world.players.values())
        n = len(lives)
        row = {
            "minute": round(tick / (60 * TICK_HZ), 1),
            "python_blocks": sys.getallocatedblocks(),
            "c_heap_mb": round(heap() / 1e6, 1) if heap else None,
            "state_bytes": round(sum(len(dump_player(p)) for p in lives) / n),
            "age_years": round(sum(p.age_days for p in lives) / n / 365, 1),
            "npcs": round(sum(len(p.npcs) for p in lives) / n, 1),
            "past_lives": round(sum(len(p.lives) for p in lives) / n, 2),
            "story_lines": round(sum(len(p.story) for p in lives) / n, 1),
            "wall_s": round(time.perf_counter() - started),
        }
        print(orjson.dumps(row).decode(), flush=True)
        if args.trace:
            if not tracemalloc.is_tracing():
                tracemalloc.start()
            else:
                snapshots.append(tracemalloc.take_snapshot())

    per_tick = 1 / TICK_HZ
    sample(0)
    for tick in range(2, args.minutes * 60 * TICK_HZ + 2):
        for s in sessions:
            roll = rng.random()
            if roll < per_tick / 5:
                inbox.put(Deliver(s, wire.Ping(ref=tick)))
            elif roll < per_tick / 5 + per_tick / 20:
                inbox.put(Deliver(s, wire.Act(action=rng.choice(ACTIONS), ref=tick)))
            if s.prompts and rng.random() < per_tick / 3:
                prompt, key = s.prompts.pop()
                inbox.put(Deliver(s, wire.Answer(prompt=prompt, choice=key, ref=tick)))
            player = world.players[s.pid]
            if tick >= talk_at[s.pid]:
                talk_at[s.pid] = tick + int(rng.uniform(*TALK_EVERY) * TICK_HZ)
                living = [npc.id for npc in player.npcs if npc.alive]
                if living:
                    inbox.put(Deliver(s, wire.Say(npc=rng.choice(living), text=rng.choice(TALK_LINES), ref=tick)))
            if not player.alive and tick % TICK_HZ == 0:
                inbox.put(Deliver(s, wire.NewLife(ref=tick)))
        loop.step(tick, tick / TICK_HZ)
        for job in jobs:
            inbox.put(NpcReply(job.player, job.life, job.npc, job.ref, provider.line(job)))
        jobs.clear()
        if tick % (args.every * 60 * TICK_HZ) == 0:
            sample(tick)
    if len(snapshots) >= 2:
        own = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
        first, last = (snap.filter_traces(own) for snap in (snapshots[0], snapshots[-1]))
        grew = last.compare_to(first, "lineno")
        for stat in grew[:15]:
            frame = stat.traceback[0]
            print(f"{stat.size_diff / 1e3:+10.1f} KB {stat.count_diff:+8d} blocks  {frame.filename}:{frame.lineno}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
