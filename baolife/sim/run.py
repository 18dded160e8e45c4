"""Run bot players through whole lives on the real engine, on virtual time.

One :class:`~baolife.tick.engine.World` with ``day_ticks=1``: every tick is
one game day for every online bot. Up to ``concurrent`` lives run side by
side; when one ends, the next begins, until ``players`` lives have ended.
Two seeded generators (the world's and the bots') make a run reproducible:
the same seed and content give the same report.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

from ..content.schema import Content
from ..model import Player
from ..tick.engine import World
from .bots import NEUTRAL, ActionGuide, Bot, Policy
from .report import WORKING_AGE, BalanceReport, LifeRecord

__all__ = ["simulate"]

# A life still going at this age is cut off and reported as unfinished.
MAX_YEARS = 130


class _Life:
    """What the simulation records about a life while it runs."""

    __slots__ = ("bot", "player", "job_years", "money_at_65")

    def __init__(self, bot: Bot, player: Player) -> None:
        self.bot = bot
        self.player = player
        self.job_years: Counter[str] = Counter()
        self.money_at_65: int | None = None


def simulate(
    content: Content,
    *,
    players: int,
    seed: int,
    year_days: int = 365,
    policy: Policy = NEUTRAL,
    concurrent: int = 500,
    command: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> BalanceReport:
    """Live ``players`` whole lives and report on them.

    Args:
        content: the content pack (the server's, or a modified copy).
        players: how many lives to run to their end.
        seed: seeds the world's and the bots' random generators.
        year_days: game days per game year (the server's ``year_days``).
        policy: how the bots play.
        concurrent: lives run side by side (a memory/speed trade-off only).
        command: the command line, quoted in the report.
        progress: called with (lives ended, players) now and then.
    """
    if players < 1:
        raise ValueError("players must be at least 1")
    world_rng = random.Random(f"world-{seed}")  # noqa: S311 - game dice, not secrets
    bot_rng = random.Random(f"bots-{seed}")  # noqa: S311 - game dice, not secrets
    world = World(content, day_ticks=1, year_days=year_days, rng=world_rng)
    guide = ActionGuide(content)
    lives: dict[int, _Life] = {}
    records: list[LifeRecord] = []
    actions: Counter[str] = Counter()
    started = 0
    tick = 0
    limit = MAX_YEARS * year_days
    work_from, work_to = WORKING_AGE[0] * year_days, WORKING_AGE[1] * year_days
    at_65 = 65 * year_days
    begun = time.perf_counter()

    def begin() -> None:
        nonlocal started
        started += 1
        player = world.rules.new_life(started, f"Bot {started}", 1)
        world.join(player, tick)
        lives[started] = _Life(Bot(started, policy, guide, bot_rng, 0, actions), player)

    for _ in range(min(players, concurrent)):
        begin()
    world.take_output()
    while lives:
        tick += 1
        world.advance(tick)
        ended: list[int] = []
        for pid, life in lives.items():
            p = life.player
            day = p.age_days
            if not p.alive or day >= limit:
                ended.append(pid)
                continue
            bot = life.bot
            if p.prompts or bot.plans or day >= bot.next_act:
                bot.on_day(world, p, tick)
            if day % year_days == 0:
                if work_from <= day < work_to:
                    life.job_years[p.job or "unemployed"] += 1
                if day == at_65:
                    life.money_at_65 = p.money
        for pid in ended:
            life = lives.pop(pid)
            p = life.player
            records.append(
                LifeRecord(
                    years=p.age_days / year_days,
                    cause=p.cause_of_death or "still alive",
                    money=p.money,
                    money_at_65=life.money_at_65,
                    education=p.education,
                    major=p.major,
                    job_years=dict(life.job_years),
                    finished=not p.alive,
                )
            )
            world.leave(pid)
            if started < players:
                begin()
            if progress is not None and len(records) % max(1, players // 20) == 0:
                progress(len(records), players)
        world.take_output()
        world.take_changed()

    stats = world.statistics()
    indexed = world.registry.statistics().indexed
    return BalanceReport(
        command=command,
        seed=seed,
        year_days=year_days,
        policy=policy.describe(),
        seconds=time.perf_counter() - begun,
        lives=tuple(records),
        player_days=stats.player_days,
        checks=stats.checks,
        evaluations=stats.evaluations,
        indexed_events=indexed,
        random_events=tuple(sorted(e.id for e in content.events.values() if not e.followup)),
        followup_events=tuple(sorted(e.id for e in content.events.values() if e.followup)),
        event_counts=dict(world.event_counts),
        prompts_opened=stats.prompts_opened,
        prompts_answered=stats.prompts_answered,
        prompts_expired=stats.prompts_expired,
        actions_taken=dict(actions),
        actions_refused=world.error_counts.get("not_allowed", 0),
    )

