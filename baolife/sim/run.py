"""Run bot players through whole lives on the real engine, on virtual time.

Lives run in *worlds* of :data:`LIVES_PER_WORLD` lives each: world ``k``
holds lives ``k * LIVES_PER_WORLD + 1 ...``, lived one after the other on
a :class:`~baolife.tick.engine.World` with ``day_ticks=1`` whose random
generators are seeded from (seed, k) (lives never meet, so each is alone
online while it runs). One tick is one step of the player's clock: one
real second of play at the server's defaults, however many game days the
stage's pace runs in it. Between the bot's turns, while nothing the player
sees can change and the steps are wholly quiet, the ticks run in one go
(:meth:`World.quiet_steps <baolife.tick.engine.World.quiet_steps>`: the
same law as step by step, tested in ``tests/sim/test_quiet_steps.py``).
Worlds are independent, so they run in worker processes (one per core,
each reusing one engine and its caches) and their results are merged in
world order: the same seed and content give the same report whatever the
number of workers.

One piece: the worker processes, the world loop and the bots' turns share
one record per life and one clock of virtual ticks; split, each part would
need the others' internals.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import attrs

from ..content.schema import Content
from ..model import MAX_AGE_YEARS, Player
from ..tick.engine import World
from ..tick.registry import EventRegistry
from .bots import NEUTRAL, ActionGuide, Bot, Policy, can_act_now, spending_limit
from .report import ADULT_AGE, WORKING_AGE, BalanceReport, EventRepeats, LifeRecord

__all__ = ["LIVES_PER_WORLD", "simulate"]

# Lives per world: fixed, so the split (and the report) does not depend on
# the number of workers; small enough to spread evenly over the workers.
LIVES_PER_WORLD = 50


class _Life:
    """What the simulation records about a life while it runs (per stage:
    lists indexed by the stage's position in the content's stage order)."""

    __slots__ = (
        "bot", "player", "job_years", "money_at_65", "year", "next_year", "stage", "next_stage", "prompt_id",
        "first_prompt", "first_action", "seconds", "prompts", "actions", "gaps", "idle", "hint",
        "adult_years", "debt_years", "debt_seconds", "minor_debt", "events", "ticks", "base", "fresh",
    )  # fmt: skip

    def __init__(self, bot: Bot, player: Player, stages: int, base: int) -> None:
        self.bot = bot
        # The world tick the life began at: its seconds are counted from there.
        self.base = base
        # Whether ``hint`` was found since the last prompt and command (still holds).
        self.fresh = False
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


class _Engine:
    """One process's world, reused from one batch of lives to the next: its
    caches (action lists, compiled conditions, the event index) are pure, so
    only its dice are seeded again and its counters started again, and a
    batch's lives are the same as in a new world. The clock runs on."""

    def __init__(self, content: Content, year_days: int) -> None:
        self.content = content
        self.year_days = year_days
        self.rng = random.Random()  # noqa: S311 - game dice, not secrets
        # Nothing here reads the ops: no prompt texts written out.
        self.world = World(content, day_ticks=1, year_days=year_days, rng=self.rng, views=False)
        self.guide = ActionGuide(content)
        self.tick = 0


_ENGINE: _Engine | None = None


def _engine(content: Content, year_days: int) -> _Engine:
    """This process's :class:`_Engine` for ``content`` (a new one for other content)."""
    global _ENGINE
    engine = _ENGINE
    if engine is None or engine.content is not content or engine.year_days != year_days:
        engine = _ENGINE = _Engine(content, year_days)
    return engine


def _run_world(job: _Job, index: int) -> _WorldResult:
    """Live the lives of world ``index`` to their ends, one after the other
    (lives do not meet: each is alone online while it runs)."""
    content, yd = job.content, job.year_days
    engine = _engine(content, yd)
    engine.rng.seed(f"world-{job.seed}-{index}")
    bot_rng = random.Random(f"bots-{job.seed}-{index}")  # noqa: S311 - game dice, not secrets
    world, guide = engine.world, engine.guide
    world.reset_statistics()
    order = content.stage_order
    starts: list[float] = [content.world.stages[s] * yd for s in order]
    starts.append(float(10**12))
    actions: Counter[str] = Counter()
    first = index * LIVES_PER_WORLD
    records: list[LifeRecord] = []
    repeats: dict[str, EventRepeats] = {}
    # The world's clock runs on from one life to the next; each life counts its own seconds.
    tick = engine.tick
    for pid in range(first + 1, min(job.players, first + LIVES_PER_WORLD) + 1):
        player = world.rules.new_life(pid, f"Bot {pid}", 1)
        world.join(player, tick)
        world.take_output()
        world.take_changed()
        life = _Life(Bot(pid, job.policy, guide, bot_rng, tick, actions), player, len(order), tick)
        life.next_stage = starts[1]
        tick = _live(world, life, tick, starts, yd)
        p = life.player
        # Birthdays crossed in the last step, before the day the life ended.
        _birthdays(life, p, life.year + 1, (p.age_days - 1) // yd)
        records.append(_record(life, order, yd))
        for event, times in life.events.items():
            r = repeats.get(event)
            repeats[event] = EventRepeats(1, times - 1, times) if r is None else r.add(times)
        world.leave(pid)
        world.take_changed()
    engine.tick = tick

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


def _live(world: World, life: _Life, tick: int, starts: list[float], yd: int) -> int:
    """Run one life (alone online) from world tick ``tick`` to its end (or
    to :data:`~baolife.model.MAX_AGE_YEARS`, as unfinished); returns the
    world tick it ended at.

    A tick is one step of the player's clock, then what the player sees,
    then the bot's turn. Where the bot has nothing to do until its next
    turn, nothing the player sees can change and the steps are wholly
    quiet, the ticks up to that turn run in one go
    (:meth:`World.quiet_steps`): those before it are counted as the same
    number of seconds seen one by one, the turn's own is seen in full.
    Nothing here reads the ops: the world's event counts tell what happened."""
    p = life.player
    pid = p.id
    bot = life.bot
    limit = MAX_AGE_YEARS * yd
    adult = ADULT_AGE * yd
    events = world.event_counts.copy()
    while True:
        steps = 0
        if (p.prompts or life.hint is not None) and _steady(world, life, p):
            # Ticks tick+1 .. turn-1 hold no turn of the bot.
            turn = bot.next_turn()
            steps = world.quiet_steps(pid, turn - tick)
            if steps:
                world.take_output()
                if not p.alive:
                    # Death came in the last of them: the seconds before it were lived.
                    _seen_quiet(life, p, tick + steps - 1, steps - 1, adult)
                    tick += steps
                    break
                if tick + steps < turn:
                    tick += steps
                    _seen_quiet(life, p, tick, steps, adult)
                    continue
                _seen_quiet(life, p, turn - 1, steps - 1, adult)
                tick = turn
        if not steps:
            tick += 1
            world.advance(tick)
            world.take_output()
            if not p.alive or p.age_days >= limit:
                break
        _observe(world, life, p, tick, starts, yd)
    world.take_changed()  # nobody saves a simulated life
    if p.next_prompt_id != life.prompt_id:
        # Prompts opened in the step the life ended in count too (prompts_opened counts them).
        life.prompts[life.stage] += p.next_prompt_id - life.prompt_id
        life.prompt_id = p.next_prompt_id
    # Alone online, the life had every event the world counted meanwhile.
    life.events = world.event_counts - events
    return tick


def _steady(world: World, life: _Life, p: Player) -> bool:
    """Whether what the player sees stays the same over quiet steps: a
    prompt waits (and the bot has seen it), or the action found last tick
    stays one to take (free, or paid by parents; off cooldown stays off,
    and the action list does not change on quiet days)."""
    if p.prompts:
        seen = life.bot.seen
        return all(pr.id in seen for pr in p.prompts)
    if not life.fresh:
        # The bot moved since the player last looked: look again.
        life.hint = can_act_now(world, p, life.hint)
        life.fresh = True
    hint = life.hint
    if hint is None:
        return False
    return world.content.actions[hint].cost <= 0 or spending_limit(world, p) == math.inf


def _seen_quiet(life: _Life, p: Player, tick: int, n: int, adult: int) -> None:
    """Count ``n`` quiet seconds up to ``tick`` (what :func:`_observe` would
    count one by one): same stage, no prompt opened, no birthday, money on
    the same side of zero, something to do throughout."""
    if n <= 0:
        return
    life.ticks = tick - life.base
    life.seconds[life.stage] += n
    if p.money < 0:
        life.debt_seconds += n
        if p.age_days < adult:
            life.minor_debt = True


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
    tick -= life.base
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
        life.fresh = False
    else:
        life.hint = can_act_now(world, p, life.hint)
        life.fresh = True
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
    tick += life.base
    if p.prompts or bot.plans or tick >= bot.next_act:  # Bot.wants_turn, inlined
        sent = bot.sent
        bot.on_tick(world, p, tick)
        if bot.sent != sent:
            life.fresh = False  # a command may have changed what the player can do
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
