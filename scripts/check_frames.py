"""Proof of sameness for the tick: hashes of every frame sent and of the saved documents.

Runs the real tick (``TickLoop.step``) as ``scripts/bench_tick.py --lives
mixed`` does (grown lives played by the simulation's bots, the load
generator's pings, actions and answers, one world RNG per seed), with
sessions that hash the bytes of every frame they are handed, in order, and
a saver that hashes the document of every player marked dirty, at each tick
and of every player at the end. Two trees that play the game byte for byte
the same print the same hashes; run it on each with ``PYTHONPATH=<tree>``:

    PYTHONPATH=/tmp/wt cd /tmp/wt && .venv/bin/python /work/main/scripts/check_frames.py --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections.abc import Iterable

import orjson
from bench_tick import NullSession
from seed_lives import live_templates

import baolife
from baolife import content as content_pkg
from baolife import protocol as wire
from baolife.model import dump_player, load_player
from baolife.tick.engine import World
from baolife.tick.loop import Attach, Deliver, Inbox, TickLoop


class HashSession(NullSession):
    """bench_tick's connection (which notes the prompts, to answer them) that
    also hashes every frame, in order, and its close."""

    def __init__(self, pid: int, digest: hashlib._Hash) -> None:
        super().__init__(pid)
        self.digest = digest

    def send_frame(self, frame: bytes) -> bool:
        self.digest.update(self.pid.to_bytes(4, "big") + len(frame).to_bytes(4, "big") + frame)
        return super().send_frame(frame)

    def close(self, code: int, reason: str) -> None:
        self.digest.update(f"close {self.pid} {code} {reason}".encode())


def run(players: int, ticks: int, seed: int, templates: int) -> dict[str, object]:
    docs = [dump_player(p) for p in live_templates(templates, 4.0, seed)]
    content = content_pkg.load()
    rng = random.Random(seed)  # noqa: S311 - game dice, not secrets
    world = World(content, day_ticks=10, year_days=365, rng=random.Random(seed))  # noqa: S311
    frames = hashlib.sha256()
    dirty = hashlib.sha256()
    inbox = Inbox(limit=10**7)

    def mark_dirty(pids: Iterable[int]) -> None:
        for pid in sorted(pids):
            dirty.update(dump_player(world.players[pid]) if pid in world.players else b"gone")

    loop = TickLoop(world, inbox, tick_hz=10, mark_dirty=mark_dirty)
    sessions = []
    for pid in range(1, players + 1):
        p = load_player(docs[pid % len(docs)])
        p.id = pid
        s = HashSession(pid, frames)
        sessions.append(s)
        loop.add_session(s)
        inbox.put(Attach(s, p))
    loop.step(1, 0.1)
    actions = ["study", "exercise", "play", "find_job", "see_doctor", "meditate", "go_out"]
    for tick in range(2, ticks + 2):
        for s in sessions:
            r = rng.random()
            if r < 1 / 50:
                inbox.put(Deliver(s, wire.Ping(ref=tick)))
            elif r < 1 / 50 + 1 / 200:
                inbox.put(Deliver(s, wire.Act(action=rng.choice(actions), ref=tick)))
            elif r < 1 / 50 + 1 / 200 + 1 / 500:
                inbox.put(Deliver(s, wire.Speed(x=rng.choice([1, 2, 5]), ref=tick)))
            if s.prompts and rng.random() < 1 / 30:
                prompt, key = s.prompts.pop()
                inbox.put(Deliver(s, wire.Answer(prompt=prompt, choice=key, ref=tick)))
            player = world.players.get(s.pid)
            if player is not None and not player.alive and rng.random() < 1 / 20:
                inbox.put(Deliver(s, wire.NewLife(name=None, ref=tick)))
        loop.step(tick, tick / 10)
    saved = hashlib.sha256()
    for pid in sorted(world.players):
        saved.update(dump_player(world.players[pid]))
    stats = world.statistics()
    return {
        "tree": baolife.__file__,
        "players": players,
        "ticks": ticks,
        "seed": seed,
        "frames": sum(s.frames for s in sessions),
        "player_days": stats.player_days,
        "busy_days": stats.busy_days,
        "deaths": stats.deaths,
        "frames_sha256": frames.hexdigest(),
        "dirty_sha256": dirty.hexdigest(),
        "saved_sha256": saved.hexdigest(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Hash every frame and saved document of a seeded tick run.")
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--templates", type=int, default=100, help="distinct grown lives (scripts/seed_lives.py)")
    args = parser.parse_args()
    print(orjson.dumps(run(args.players, args.ticks, args.seed, args.templates), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
