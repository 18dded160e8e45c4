"""A driver of the game engine for the core's tests: it plays the tick
loop's part (commands, then days, then output) with no event loop."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from baolife import protocol as wire
from baolife.content.schema import Content
from baolife.model import Npc, Player
from baolife.tick.engine import SayJob, World

__all__ = ["Harness"]


class Harness:
    """Plays the tick loop's part: commands, then days, then output."""

    def __init__(
        self, content: Content, *, day_ticks: int = 1, year_days: int = 12, seed: int = 3, **world: Any
    ) -> None:
        """``world``: further World arguments (fast_forward_budget, skip_quiet)."""
        self.jobs: list[SayJob] = []
        self.accept_jobs = True
        self.world = World(
            content,
            day_ticks=day_ticks,
            year_days=year_days,
            rng=random.Random(seed),
            submit_say=self._submit,
            **world,
        )
        self.tick = 0

    def _submit(self, job: SayJob) -> bool:
        if self.accept_jobs:
            self.jobs.append(job)
        return self.accept_jobs

    def join(self, pid: int = 1, token: str | None = None) -> tuple[Player, list[dict[str, Any]]]:
        player = self.world.rules.new_life(pid, "Ana Test", 1)
        self.world.join(player, self.tick, ref="j", token=token)
        return player, [op.wire() for op in self.world.take_output()[pid]]

    def step(self, *commands: tuple[int, wire.Command]) -> dict[int, list[dict[str, Any]]]:
        self.tick += 1
        for pid, cmd in commands:
            self.world.apply(pid, cmd, self.tick)
        self.world.advance(self.tick)
        return {pid: [op.wire() for op in ops] for pid, ops in self.world.take_output().items()}

    def run_until(self, pid: int, predicate: Any, limit: int = 500) -> list[dict[str, Any]]:
        for _ in range(limit):
            ops = self.step().get(pid, [])
            if any(predicate(op) for op in ops):
                return ops
        raise AssertionError("condition never met")

    def live(
        self,
        player: Player,
        days: int,
        *,
        talk_every: int,
        say: Callable[[int, list[Npc]], tuple[Npc, str]],
        reply: Callable[[SayJob], str],
    ) -> None:
        """Play ``player`` (joined at tick 0, one tick a day) for up to
        ``days`` days, or until it dies: every ``talk_every`` days it says
        ``say(day, its living NPCs)`` and each NPC answers at once with
        ``reply(job)``, so its NPCs remember the talks."""
        world = self.world
        for tick in range(1, days):
            world.advance(tick)
            if tick % talk_every == 0 and player.alive:
                living = [npc for npc in player.npcs if npc.alive]
                if living:
                    npc, text = say(tick, living)
                    world.apply(player.id, wire.Say(npc=npc.id, text=text), tick)
                for job in self.jobs:
                    world.npc_reply(job.player, job.life, job.npc, job.ref, reply(job))
                self.jobs.clear()
            world.take_output()
            if not player.alive:
                break
