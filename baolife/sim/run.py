"""Run bot players through whole lives on the real engine, on virtual time.

Lives run in *worlds* of :data:`LIVES_PER_WORLD` lives each: world ``k``
holds lives ``k * LIVES_PER_WORLD + 1 ...``, all born at tick 0, and is a
:class:`~baolife.tick.engine.World` with ``day_ticks=1`` whose random
generators are seeded from (seed, k). One tick is one step of every
player's clock: one real second of play at the server's defaults, however
many game days the stage's pace runs in it. Worlds are independent, so they
run in worker processes (one per core) and their results are merged in
world order: the same seed and content give the same report whatever the
number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import attrs

from .. import protocol as wire
from ..content.schema import Content
from ..model import Player
from ..tick.engine import World
from ..tick.registry import EventRegistry
from .bots import NEUTRAL, ActionGuide, Bot, Policy, can_act_now
from .report import ADULT_AGE, WORKING_AGE, BalanceReport, EventRepeats, LifeRecord

__all__ = ["LIVES_PER_WORLD", "simulate"]

# A life still going at this age is cut off and reported as unfinished.
MAX_YEARS = 130
# Lives per world: fixed, so the split (and the report) does not depend on
# the number of workers; small enough to spread evenly over the workers.
LIVES_PER_WORLD = 50

_Outcome = getattr(wire, "Outcome", None)


class _Life:
    """What the simulation records about a life while it runs (per stage:
    lists indexed by the stage's position in the content's stage order)."""

    __slots__ = (
        "bot", "player", "job_years", "money_at_65", "year", "next_year", "stage", "next_stage", "prompt_id",
        "first_prompt", "first_action", "seconds", "prompts", "actions", "gaps", "idle", "hint",
        "adult_years", "debt_years", "debt_seconds", "minor_debt", "events", "ticks",
    )  # fmt: skip

    def __init__(self, bot: Bot, player: Player, stages: int) -> None:
        self.bot = bot
        self.player = player
        self.job_years: Counter[str] = Counter()
        self.money_at_65: int | None = None
        self.year = 0
        # The age in days of the next birthday (0: found at the first look).
        self.next_year = 0
        self.stage = 0
        self.next_stage = 0.0
        self.prompt_id = player.next_prompt_id
        self.first_prompt: int | None = None
        self.first_action: int | None = None
        self.seconds = [0] * stages
        self.prompts = [0] * stages
        self.actions = [0] * stages
        self.gaps = [0] * stages
        # Seconds so far with neither a pending prompt nor an action to take.
        self.idle = 0
        # The action found available last time (usually still is: a cheap check).
        self.hint: str | None = None
        self.adult_years = 0
        self.debt_years = 0
        self.debt_seconds = 0
        self.minor_debt = False
        self.events: Counter[str] = Counter()
        self.ticks = 0


@attrs.frozen
class _WorldResult:
    """What one world's lives produced: plain data, merged in world order.
    Crossing from a worker process it travels by multiprocessing's own
    transport (plain dicts, lists and attrs records); we serialise nothing
    ourselves."""

    lives: list[LifeRecord]
    player_days: int
    checks: int
    evaluations: int
    event_counts: dict[str, int]
    repeats: dict[str, EventRepeats]
    prompts_opened: int
    prompts_answered: int
    prompts_expired: int
    actions_taken: dict[str, int]
    actions_refused: int


@attrs.frozen
class _Job:
    """Everything a world needs besides its index (shared with forked workers)."""

    content: Content
    players: int
    seed: int
    year_days: int
    policy: Policy


def _run_world(job: _Job, index: int) -> _WorldResult:
    """Live the lives of world ``index`` to their ends."""
    content, yd = job.content, job.year_days
    world_rng = random.Random(f"world-{job.seed}-{index}")  # noqa: S311 - game dice, not secrets
    bot_rng = random.Random(f"bots-{job.seed}-{index}")  # noqa: S311 - game dice, not secrets
    world = World(content, day_ticks=1, year_days=yd, rng=world_rng)
    guide = ActionGuide(content)
    order = content.stage_order
    starts: list[float] = [content.world.stages[s] * yd for s in order]
    starts.append(float(10**12))
    limit = MAX_YEARS * yd
    actions: Counter[str] = Counter()
    first = index * LIVES_PER_WORLD
    lives: dict[int, _Life] = {}
    for pid in range(first + 1, min(job.players, first + LIVES_PER_WORLD) + 1):
        player = world.rules.new_life(pid, f"Bot {pid}", 1)
        world.join(player, 0)
        life = lives[pid] = _Life(Bot(pid, job.policy, guide, bot_rng, 0, actions), player, len(order))
        life.next_stage = starts[1]
    world.take_output()
    world.take_changed()
    records: list[LifeRecord] = []
    repeats: dict[str, EventRepeats] = {}
    tick = 0
    while lives:
        tick += 1
        world.advance(tick)
        _count_events(world.take_output(), lives)
        ended: list[int] = []
        for pid, life in lives.items():
            p = life.player
            if not p.alive or p.age_days >= limit:
                ended.append(pid)
                continue
            _observe(world, life, p, tick, starts, yd)
        if ended:
            for pid in ended:
                life = lives.pop(pid)
                # Birthdays crossed in the last step, before the day the life ended.
                p = life.player
                _birthdays(life, p, life.year + 1, (p.age_days - 1) // yd)
                records.append(_record(life, order, yd))
                for event, times in life.events.items():
                    r = repeats.get(event)
                    repeats[event] = EventRepeats(1, times - 1, times) if r is None else r.add(times)
                world.leave(pid)
        # Ops of the bots' commands (prompt_closed, outcome...): counted next tick.
        world.take_changed()

    stats = world.statistics()
    return _WorldResult(
        lives=records,
        player_days=stats.player_days,
        checks=stats.checks,
        evaluations=stats.evaluations,
        event_counts=dict(world.event_counts),
        repeats=repeats,
        prompts_opened=stats.prompts_opened,
        prompts_answered=stats.prompts_answered,
        prompts_expired=stats.prompts_expired,
        actions_taken=dict(actions),
        actions_refused=world.error_counts.get("not_allowed", 0),
    )


def _count_events(out: dict[int, list[wire.Op]], lives: dict[int, _Life]) -> None:
    """Count, per life, the events that happened: prompts that opened and
    events without choices (their ``outcome`` op)."""
    state = wire.State
    for pid, ops in out.items():
        if len(ops) == 1 and type(ops[0]) is state:
            continue  # a step and nothing else: the common case
        life = lives.get(pid)
        if life is None:
            continue
        for op in ops:
            kind = type(op)
            if isinstance(op, wire.PromptOp):
                prompt = life.player.prompt(op.id)
                if prompt is not None:
                    life.events[prompt.event] += 1
            elif kind is _Outcome and getattr(op, "source", "") == "event":
                life.events[getattr(op, "id", "")] += 1


def _observe(world: World, life: _Life, p: Player, tick: int, starts: list[float], yd: int) -> None:
    """One second of a live player: what it sees (for the pacing figures),
    birthdays crossed since the last tick, debt, then the bot's turn."""
    day = p.age_days
    while day >= life.next_stage:
        if life.idle:
            # A gap is counted in the stage where it ends; a stage change ends it.
            life.gaps[life.stage] = max(life.gaps[life.stage], life.idle)
            life.idle = 0
        life.stage += 1
        life.next_stage = starts[life.stage + 1]
    stage = life.stage
    life.ticks = tick
    life.seconds[stage] += 1
    if p.next_prompt_id != life.prompt_id:
        life.prompts[stage] += p.next_prompt_id - life.prompt_id
        life.prompt_id = p.next_prompt_id
        if life.first_prompt is None:
            life.first_prompt = tick
    if day >= life.next_year:
        year = day // yd
        _birthdays(life, p, life.year + 1, year)
        life.year = year
        life.next_year = (year + 1) * yd
    if p.money < 0:
        life.debt_seconds += 1
        if day < ADULT_AGE * yd:
            life.minor_debt = True
    # What the player sees now, before the bot moves: a prompt, or an action to take.
    if p.prompts:
        busy = True
    else:
        life.hint = can_act_now(world, p, life.hint)
        busy = life.hint is not None
        if busy and life.first_action is None:
            life.first_action = tick
    if busy:
        if life.idle:
            life.gaps[stage] = max(life.gaps[stage], life.idle)
            life.idle = 0
    else:
        life.idle += 1
    bot = life.bot
    if p.prompts or bot.plans or tick >= bot.next_act:  # Bot.wants_turn, inlined
        bot.on_tick(world, p, tick)
        if bot.acted:
            life.actions[stage] += bot.acted
            bot.acted = 0


def _birthdays(life: _Life, p: Player, first: int, last: int) -> None:
    """Birthdays ``first..last`` (in years), crossed since the last tick."""
    for years in range(first, last + 1):
        if WORKING_AGE[0] <= years < WORKING_AGE[1]:
            life.job_years[p.job or "unemployed"] += 1
        if years == 65:
            life.money_at_65 = p.money
        if years >= ADULT_AGE:
            life.adult_years += 1
            life.debt_years += p.money < 0


def _record(life: _Life, order: Sequence[str], yd: int) -> LifeRecord:
    p = life.player
    if life.idle:
        life.gaps[life.stage] = max(life.gaps[life.stage], life.idle)
    lived = [i for i, s in enumerate(life.seconds) if s]
    return LifeRecord(
        years=p.age_days / yd,
        cause=p.cause_of_death or "still alive",
        money=p.money,
        money_at_65=life.money_at_65,
        education=p.education,
        major=p.major,
        job_years=dict(life.job_years),
        finished=not p.alive,
        seconds=life.ticks,
        first_prompt=life.first_prompt,
        first_action=life.first_action,
        stage_seconds={order[i]: life.seconds[i] for i in lived},
        stage_prompts={order[i]: life.prompts[i] for i in lived},
        stage_actions={order[i]: life.actions[i] for i in lived},
        stage_gaps={order[i]: life.gaps[i] for i in lived},
        adult_years=life.adult_years,
        debt_years=life.debt_years,
        debt_seconds=life.debt_seconds,
        minor_debt=life.minor_debt,
    )


# The job of the worker processes, set before they fork (so the content is
# not sent to them) and read by _worker.
_FORKED_JOB: _Job | None = None


def _worker(index: int) -> _WorldResult:
    assert _FORKED_JOB is not None  # noqa: S101 - set by simulate before the fork
    return _run_world(_FORKED_JOB, index)


def _results(job: _Job, worlds: int, workers: int) -> Iterator[_WorldResult]:
    """The worlds' results in world order, from ``workers`` processes (in
    this process when 1, or where processes cannot be forked)."""
    global _FORKED_JOB
    if workers > 1 and worlds > 1 and "fork" in multiprocessing.get_all_start_methods():
        _FORKED_JOB = job
        try:
            with multiprocessing.get_context("fork").Pool(min(workers, worlds)) as pool:
                yield from pool.imap(_worker, range(worlds))
        finally:
            _FORKED_JOB = None
        return
    for index in range(worlds):
        yield _run_world(job, index)


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def simulate(
    content: Content,
    *,
    players: int,
    seed: int,
    year_days: int = 365,
    policy: Policy = NEUTRAL,
    workers: int = 1,
    command: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> BalanceReport:
    """Live ``players`` whole lives and report on them.

    Args:
        content: the content pack (the server's, or a modified copy).
        players: how many lives to run to their end.
        seed: seeds the worlds' and the bots' random generators.
        year_days: game days per game year (the server's ``year_days``).
        policy: how the bots play.
        workers: processes to run worlds in (the report does not depend on it).
        command: the command line, quoted in the report.
        progress: called with (lives ended, players) after each world.
    """
    if players < 1:
        raise ValueError("players must be at least 1")
    begun = time.perf_counter()
    job = _Job(content=content, players=players, seed=seed, year_days=year_days, policy=policy)
    worlds = -(-players // LIVES_PER_WORLD)
    lives: list[LifeRecord] = []
    counts: Counter[str] = Counter()
    actions: Counter[str] = Counter()
    repeats: dict[str, EventRepeats] = {}
    sums: Counter[str] = Counter()
    if progress is not None:
        progress(0, players)
    for result in _results(job, worlds, workers):
        lives += result.lives
        counts.update(result.event_counts)
        actions.update(result.actions_taken)
        for event, r in result.repeats.items():
            repeats[event] = r if event not in repeats else repeats[event].merge(r)
        for field in ("player_days", "checks", "evaluations", "prompts_opened", "prompts_answered",
                      "prompts_expired", "actions_refused"):  # fmt: skip
            sums[field] += getattr(result, field)
        if progress is not None:
            progress(len(lives), players)

    return BalanceReport(
        command=command,
        seed=seed,
        year_days=year_days,
        policy=policy.describe(),
        seconds=time.perf_counter() - begun,
        lives=tuple(lives),
        player_days=sums["player_days"],
        checks=sums["checks"],
        evaluations=sums["evaluations"],
        indexed_events=EventRegistry(content).statistics().indexed,
        random_events=tuple(sorted(e.id for e in content.events.values() if not e.followup)),
        followup_events=tuple(sorted(e.id for e in content.events.values() if e.followup)),
        event_counts=dict(sorted(counts.items())),
        event_repeats=dict(sorted(repeats.items())),
        prompts_opened=sums["prompts_opened"],
        prompts_answered=sums["prompts_answered"],
        prompts_expired=sums["prompts_expired"],
        actions_taken=dict(sorted(actions.items())),
        actions_refused=sums["actions_refused"],
        stages=tuple(content.stage_order),
    )
