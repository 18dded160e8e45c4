"""Benchmark of the NPC AI layer: upstream calls and cost per player-day,
ours against a naive client, healthy and with half the calls failing.

1,000 simulated players (``--players``) each say 25 lines (``--says``) over
one simulated day, in conversation sessions with their NPCs: most sessions
open with a greeting, some add small talk, then one or two lines of their
own, sometimes a goodbye. The says are replayed in time order through the
real :class:`~baolife.ai.service.NpcService` (16 workers, as configured by
default) against the fake OpenAI server in a separate process over real
HTTP, once with our provider and once with a naive one: the old backend's
policy (no cache, no budget, no single-flight, no breaker, 3 retries on any
error). Each NPC keeps its conversation memory (20 turns, summary) as the
game does.

Time: the replay runs as fast as the machine allows, so the waits we
control are scaled by ``--time-scale`` (backoff, breaker cooldown, the
fake's latency) and the reply cache's TTL runs on the simulated clock of
the say being answered. The job deadline is not scaled.

Printed: per client and scenario, upstream calls and cost (from the tokens
the fake counted, at the configured prices) per player-day, replies by
source, fallbacks by reason, and the ratios ours/naive from the same run.
Checked: the configured budgets were never exceeded upstream.

With ``--workers 2 --db mysql://...`` it runs the cluster instead (issue
13.4): two worker processes, each with its own NPC stack and its own
connection pool on the one database (the shared budget and reply cache),
replay the same day at once against the one fake, each player moving to the
other worker every quarter of the day. Runs, each with its own budget day
and cache key: healthy on one worker (the baseline), healthy on two, two
with nothing shared (local budgets and caches), half failing on two, and a
tight budget (``--tight-share`` of the two workers' healthy spend) healthy
and half failing. Checked: the upstream cost never passed the budget, no
player passed their daily calls, and what the workers charged was never less
than the fake billed; and two workers called the upstream as often as one,
but for cache keys first asked on both at the same moment.

One piece: one benchmark run as one file; the replay, the two clients and
the report share one scenario and its figures, and a cluster run's worker
processes run this same file (``--worker``) so that each replays exactly its
share of the says the parent generated.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
import orjson
import structlog
import trio

from baolife import content as content_pkg
from baolife.ai import prompt
from baolife.ai.cache import ReplyCache
from baolife.ai.client import ChatClient, UpstreamError
from baolife.ai.llm import LlmProvider
from baolife.ai.offline import ScriptedProvider
from baolife.ai.reply import Fallback, FallbackReason, Reply, ReplySource
from baolife.ai.service import NpcService, NpcStatistics
from baolife.config import Settings
from baolife.content.schema import Content
from baolife.db import open_store
from baolife.model import Memory, Npc, Turn
from baolife.tick.engine import SayJob
from baolife.tick.loop import NpcReply
from baolife.tick.memory import remember

DAY = 86400.0
ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------- the workload

ADDRESS = {"mother": "mom", "father": "dad", "sibling": "sis", "friend": "buddy", "partner": "babe", "boss": "boss"}
GREETINGS = ["hi", "hello", "hey", "Hi!", "hello!", "hey {a}", "hi {a}", "good morning", "heyyy", "yo", "hi {a}!"]
SMALL_TALK = [
    "how are you?",
    "how are you doing?",
    "what's up?",
    "how was your day?",
    "what are you doing?",
    "how's it going?",
    "wyd",
    "miss you",
]
GOODBYES = ["bye", "see you later", "good night", "bye {a}!", "gotta go", "night"]
SUBJECTS = "maths history chemistry art music biology football piano coding french economics".split()
THINGS = "bike phone laptop car puppy apartment job offer scholarship camera guitar ticket".split()
FREE = [
    "I got {n} on my {s} test today",
    "Should I buy a new {t}?",
    "I think I want to quit {s}",
    "Can you lend me {n} dollars for a {t}?",
    "My friend broke my {t} yesterday",
    "I'm nervous about the {s} exam on day {n}",
    "Do you remember my {t} from when I was {n}?",
    "I met someone at {s} class, they are really nice",
    "What do you think about me studying {s} at university?",
    "I lost my {t} again, sorry",
    "I've been practising {s} for {n} hours",
    "Why did you never tell me about the {t}?",
]
ROLES = ["sibling", "friend", "partner", "boss", "coworker"]
NAMES = "Lan Minh Hoa Tuan Mai Nam Linh Duc Thu Hung Anh Quan Huong Long Vy Khoa".split()


@attrs.frozen
class Say:
    at: float
    player: int
    npc: int
    text: str
    small_talk: bool


@attrs.define
class PlayerSim:
    id: int
    name: str
    npcs: list[Npc]
    # What SayJob.of reads of a player besides the above: an adult's first life.
    life: int = 1
    age_days: int = 30 * 365


def make_players(content: Content, count: int, rng: random.Random) -> list[PlayerSim]:
    """Each player knows their mother, father and two more NPCs, with personas
    drawn as the game draws them."""
    players = []
    for pid in range(1, count + 1):
        npcs = []
        for i, role in enumerate(["mother", "father", *rng.sample(ROLES, 2)], start=1):
            personas = [p.id for p in content.personas.values() if role in p.roles]
            npcs.append(
                Npc(
                    id=i, name=rng.choice(NAMES), role=role, closeness=rng.randint(20, 95), persona=rng.choice(personas)
                )
            )
        players.append(PlayerSim(pid, f"{rng.choice(NAMES)} Player{pid}", npcs))
    return players


def make_says(players: list[PlayerSim], per_player: int, rng: random.Random) -> list[Say]:
    """Every player's ``per_player`` says in sessions at random times of the
    day, all players merged in time order."""
    says: list[Say] = []
    for player in players:
        lines: list[tuple[float, int, str, bool]] = []
        while len(lines) < per_player:
            npc = rng.choice(player.npcs)
            a = ADDRESS.get(npc.role, "")
            start = rng.uniform(0, DAY - 600)
            session: list[tuple[str, bool]] = []
            if rng.random() < 0.9:
                session.append((rng.choice(GREETINGS).format(a=a), True))
            if rng.random() < 0.5:
                session.append((rng.choice(SMALL_TALK), True))
            for _ in range(1 + (rng.random() < 0.5)):
                line = rng.choice(FREE).format(n=rng.randint(1, 99), s=rng.choice(SUBJECTS), t=rng.choice(THINGS))
                session.append((line, False))
            if rng.random() < 0.4:
                session.append((rng.choice(GOODBYES).format(a=a), True))
            lines.extend((start + 30 * k, npc.id, text, st) for k, (text, st) in enumerate(session))
        for at, npc_id, text, st in lines[:per_player]:
            says.append(Say(at, player.id, npc_id, text, st))
    says.sort(key=lambda s: s.at)
    return says


# ----------------------------------------------------------------- the naive client


class NaiveProvider:
    """The old backend's policy: every say is a call, retried on any error."""

    name = "naive"

    def __init__(self, client: ChatClient, content: Content, settings: Settings, *, retries: int, backoff: float):
        self.client = client
        self.content = content
        self.settings = settings
        self.retries = retries
        self.backoff = backoff

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await self.client.aclose()

    async def reply(self, job: SayJob) -> Reply | Fallback:
        s = self.settings
        messages = prompt.messages_for(job, prompt.persona_of(self.content, job), context_turns=s.ai_context_turns)
        body = prompt.request_body(s.ai_model, messages, max_tokens=s.ai_max_tokens, user=f"player-{job.player}")
        for attempt in range(self.retries + 1):
            try:
                return Reply((await self.client.complete(body)).text, ReplySource.LLM)
            except UpstreamError:
                if attempt == self.retries:
                    return Fallback(FallbackReason.UPSTREAM_ERROR)
                await trio.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")


# ----------------------------------------------------------------- one run


@attrs.define
class Result:
    client: str
    scenario: str
    says: int
    calls: int
    cost: float
    max_player_calls: int
    sources: dict[str, int]
    reasons: dict[str, int]
    seconds: float
    budget: float | None
    governor_spent: float | None


class Fake:
    """The fake OpenAI server in its own process (the other core), driven over HTTP."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "baolife.ai.fake", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
        if not match:
            self.close()
            raise SystemExit(f"fake server did not start: {line!r}")
        self.base_url = match.group(1)
        self.root = self.base_url.removesuffix("/v1")

    async def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with httpx.AsyncClient(trust_env=False) as http:
            if body is None and path == "/stats":
                response = await http.get(self.root + path)
            else:
                response = await http.post(self.root + path, json=body or {})
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def run_once(
    fake: Fake,
    content: Content,
    players: list[PlayerSim],
    says: list[Say],
    *,
    client_kind: str,
    scenario: str,
    fail_rate: float,
    settings: Settings,
    scale: float,
) -> Result:
    """Replay ``says`` through one NPC stack; the fake's counters are the truth."""
    await fake.control("/reset")
    await fake.control("/behaviour", {"fail_rate": fail_rate, "failure": "500", "latency": 1.0 * scale})
    sim_now = [0.0]
    client = ChatClient(fake.base_url, "bench", max_connections=settings.ai_workers, timeout=settings.ai_timeout)
    provider: Any
    if client_kind == "ours":
        provider = LlmProvider.from_settings(settings, content, None)
        provider.client = client
        compress_time(provider, settings, scale, sim_now, None)
    else:
        provider = NaiveProvider(client, content, settings, retries=3, backoff=0.5 * scale)
    st, seconds = await replay(provider, content, players, says, settings, sim_now)
    stats = await fake.control("/stats")
    return Result(
        client=client_kind,
        scenario=scenario,
        says=len(says),
        calls=stats["calls"],
        cost=billed(stats, settings),
        max_player_calls=stats["max_calls_per_user"],
        sources=st.sources,
        reasons=st.reasons,
        seconds=seconds,
        budget=settings.ai_daily_budget if client_kind == "ours" else None,
        governor_spent=provider.governor.spent if client_kind == "ours" else None,
    )


def billed(stats: dict[str, Any], settings: Settings) -> float:
    """What the fake's answered calls cost at the configured prices."""
    s = settings
    return stats["prompt_tokens"] / 1000 * s.ai_price_in + stats["completion_tokens"] / 1000 * s.ai_price_out


def compress_time(provider: LlmProvider, settings: Settings, scale: float, sim_now: list[float], store: Any) -> None:
    """Scale the waits we control; the reply cache's TTL runs on the
    simulated day, not on the compressed wall clock (shared entries too)."""
    provider.backoff_base, provider.backoff_max = 0.5 * scale, 4.0 * scale
    provider.breaker.base_cooldown = provider.breaker.cooldown = settings.ai_breaker_cooldown * scale
    provider.cache = ReplyCache(
        settings.ai_cache_size, settings.ai_cache_ttl, model=settings.ai_model, store=store, clock=lambda: sim_now[0]
    )
    # The shared cache's rest after a failure is a wait we control; its
    # lookup bound is not (the database is as slow as it is).
    provider.cache.retry_seconds *= scale


async def replay(
    provider: Any,
    content: Content,
    players: list[PlayerSim],
    says: list[Say],
    settings: Settings,
    sim_now: list[float],
) -> tuple[NpcStatistics, float]:
    """Replay ``says`` in time order through an NpcService on ``provider``,
    one say in flight per player; the service's statistics and the seconds taken."""
    for player in players:  # fresh memories: every run sees the same conversations
        for npc in player.npcs:
            npc.memory, npc.summary = Memory(), ""
    by_id = {p.id: p for p in players}
    slots = trio.Semaphore(settings.ai_queue)
    done = trio.Event()
    pending = [len(says)]
    backlog: dict[int, list[Say]] = {}
    service: NpcService

    def submit(say: Say) -> None:
        # The cache's clock only moves forward (a backlogged say may be a bit older).
        sim_now[0] = max(sim_now[0], say.at)
        player = by_id[say.player]
        npc = player.npcs[say.npc - 1]
        job = SayJob.of(player, npc, say.text, None, year_days=365, stage="adult")
        if not service.submit(job):
            raise SystemExit("the job channel refused a job: the driver's bound is wrong")
        remember(npc, Turn(who="player", text=say.text))

    def deliver(reply: NpcReply) -> None:
        player = by_id[reply.player]
        remember(player.npcs[reply.npc - 1], Turn(who="npc", text=reply.text))
        pending[0] -= 1
        waiting = backlog.get(reply.player)
        if waiting:
            submit(waiting.pop(0))  # the player's next line reuses this job's slot
        else:
            backlog.pop(reply.player, None)
            slots.release()
        if not pending[0]:
            done.set()

    service = NpcService(
        provider,
        ScriptedProvider(content),
        workers=settings.ai_workers,
        queue=settings.ai_queue,
        timeout=settings.ai_timeout,
        deliver=deliver,
    )
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        for say in says:
            if say.player in backlog:
                # One say in flight per player, as the engine enforces: this
                # one goes after the player's reply, without holding up others.
                backlog[say.player].append(say)
                continue
            await slots.acquire()  # never more jobs than the channel holds
            backlog[say.player] = []
            submit(say)
        if says:
            await done.wait()
        nursery.cancel_scope.cancel()
    return service.statistics(), time.perf_counter() - started


# ----------------------------------------------------------------- workers sharing one database


def owner(say: Say, workers: int) -> int:
    """The worker a say is made on: each player moves to the next worker
    every quarter of the day (as if reconnecting through the proxy), so
    every player spends on every worker."""
    return (say.player + int(say.at // (DAY / 4))) % workers


@attrs.frozen
class WorkerJob:
    """What a worker process replays (sent as JSON on its stdin)."""

    index: int
    workers: int
    players: int
    says: int
    seed: int
    fake: str
    db: str | None  # None: nothing shared (local budget and cache, no store)
    day: str  # the governor's "today": each run its own day, so runs never share a budget
    model: str  # part of the shared cache's key: each run its own cache
    budget: float
    fail_rate: float
    scale: float


async def worker_main(job: WorkerJob) -> dict[str, Any]:
    """One worker of a cluster run: its share of the says through its own
    NPC stack and, when ``job.db`` is set, its own store (its own connection
    pool) on the shared database."""
    content = content_pkg.load()
    rng = random.Random(job.seed)
    players = make_players(content, job.players, rng)
    mine = [say for say in make_says(players, job.says, rng) if owner(say, job.workers) == job.index]
    settings = Settings.defaults(
        ai_api_key="bench", ai_base_url=job.fake, ai_model=job.model, ai_daily_budget=job.budget
    )
    sim_now = [0.0]

    async def run(store: Any) -> dict[str, Any]:
        provider = LlmProvider.from_settings(settings, content, store)
        provider.governor.today = lambda: job.day
        provider.governor.day = job.day
        compress_time(provider, settings, job.scale, sim_now, provider.governor.ledger)
        print("READY", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("no go")
        st, seconds = await replay(provider, content, players, mine, settings, sim_now)
        cache = provider.cache.statistics()
        g = provider.governor.statistics()
        return {
            "says": len(mine),
            "seconds": seconds,
            "sources": {str(k): v for k, v in st.sources.items()},
            "reasons": {str(k): v for k, v in st.reasons.items()},
            "cache": attrs.asdict(cache),
            "charged": g.spent_total,
            "reserve_failures": g.reserve_failures,
            "settle_failures": g.settle_failures,
            "store_calls": 0 if store is None else store.statistics().calls,
            "store_seconds": 0.0 if store is None else store.statistics().call_seconds,
        }

    if job.db is None:
        return await run(None)
    async with open_store(job.db, pool_size=settings.ai_workers) as store:
        return await run(store)


class WorkerProcess:
    """A worker replaying its share in its own process (its own core when free)."""

    def __init__(self, job: WorkerJob) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(attrs.asdict(job)).decode() + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str) -> str:
        """The rest of the next stdout line starting with ``word`` (log lines are skipped)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(word):
                return line[len(word) :].strip()
        raise SystemExit(f"a worker ended before {word}: exit {self.proc.wait()}")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)


@attrs.define
class ClusterResult:
    name: str
    workers: int
    shared: bool
    says: int
    calls: int
    cost: float
    max_player_calls: int
    budget: float
    charged: float
    sources: dict[str, int]
    reasons: dict[str, int]
    cache_hits: int
    shared_hits: int
    shared_errors: int
    seconds: float
    reserve_failures: int
    settle_failures: int
    store_calls: int
    store_seconds: float


async def cluster_run(
    fake: Fake,
    args: argparse.Namespace,
    run_no: int,
    *,
    name: str,
    workers: int,
    shared: bool,
    fail_rate: float,
    budget: float,
    settings: Settings,
) -> ClusterResult:
    """One run: ``workers`` processes replay their shares at once."""
    await fake.control("/reset")
    await fake.control("/behaviour", {"fail_rate": fail_rate, "failure": "500", "latency": 1.0 * args.time_scale})
    jobs = [
        WorkerJob(
            index=k,
            workers=workers,
            players=args.players,
            says=args.says,
            seed=args.seed,
            fake=fake.base_url,
            db=args.db if shared else None,
            day=datetime.date.fromordinal(args.first_day + run_no).isoformat(),
            model=f"bench-{args.first_day}-{run_no}",
            budget=budget,
            fail_rate=fail_rate,
            scale=args.time_scale,
        )
        for k in range(workers)
    ]
    procs = [WorkerProcess(job) for job in jobs]
    try:
        for proc in procs:
            proc.expect("READY")
        started = time.perf_counter()
        for proc in procs:
            proc.go()
        outs = [orjson.loads(await trio.to_thread.run_sync(proc.expect, "RESULT")) for proc in procs]
        seconds = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.close()
    stats = await fake.control("/stats")
    sources: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for out in outs:
        sources.update(out["sources"])
        reasons.update(out["reasons"])
    return ClusterResult(
        name=name,
        workers=workers,
        shared=shared,
        says=sum(out["says"] for out in outs),
        calls=stats["calls"],
        cost=billed(stats, settings),
        max_player_calls=stats["max_calls_per_user"],
        budget=budget,
        charged=sum(out["charged"] for out in outs),
        sources=dict(sources),
        reasons=dict(reasons),
        cache_hits=sum(out["cache"]["hits"] for out in outs),
        shared_hits=sum(out["cache"]["shared_hits"] for out in outs),
        shared_errors=sum(out["cache"]["shared_errors"] for out in outs),
        seconds=seconds,
        reserve_failures=sum(out["reserve_failures"] for out in outs),
        settle_failures=sum(out["settle_failures"] for out in outs),
        store_calls=sum(out["store_calls"] for out in outs),
        store_seconds=sum(out["store_seconds"] for out in outs),
    )


def small_talk_keys(args: argparse.Namespace) -> int:
    """Distinct reply-cache keys of the workload's greetings and small talk."""
    content = content_pkg.load()
    rng = random.Random(args.seed)
    players = make_players(content, args.players, rng)
    by_id = {p.id: p for p in players}
    keys = set()
    for say in make_says(players, args.says, rng):
        player = by_id[say.player]
        job = SayJob.of(player, player.npcs[say.npc - 1], say.text, None, year_days=365, stage="adult")
        intent = prompt.small_talk(job.text, job.npc_name)
        if intent is not None:
            keys.add(prompt.cache_key(job, prompt.persona_of(content, job), intent))
    return len(keys)


def show_cluster(r: ClusterResult, players: int) -> None:
    sources = ", ".join(f"{k} {v}" for k, v in sorted(r.sources.items()))
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.reasons.items())) or "none"
    print(
        f"  {r.name:44}  calls {r.calls:6d} ({r.calls / players:5.2f}/player-day)  cost {r.cost:9.5f}  "
        f"max calls/player {r.max_player_calls:3d}  cache hits {r.cache_hits + r.shared_hits:6d} "
        f"(shared {r.shared_hits})  {r.seconds:6.1f} s"
    )
    print(f"  {'':44}  replies: {sources}; fallbacks: {reasons}")
    if r.store_calls:
        print(
            f"  {'':44}  store calls {r.store_calls} ({r.store_calls / max(1, r.calls):.2f} per upstream call, "
            f"{r.store_calls / r.says:.2f} per say), mean {r.store_seconds / r.store_calls * 1000:.1f} ms"
        )
    if r.shared_errors or r.reserve_failures or r.settle_failures:
        print(
            f"  {'':44}  store failures: cache {r.shared_errors}, reservations {r.reserve_failures}, "
            f"settlements {r.settle_failures}"
        )


def cluster_main(args: argparse.Namespace, settings: Settings) -> int:
    """Two (``--workers``) worker processes on one database against one fake."""
    print(f"cluster: {args.workers} worker processes on {args.db}, one fake OpenAI server; players move worker")
    print("         every quarter of a simulated day; each run has its own budget day and cache key")
    # Runs of this invocation and of earlier ones on the same database never
    # share a budget day or a cache key: days from a random one in 1900-1999.
    args.first_day = random.SystemRandom().randrange(693_596, 730_119 - 100)
    fake = Fake()
    results: list[ClusterResult] = []
    cap = settings.ai_player_daily_calls
    try:

        async def runs() -> None:
            w, budget = args.workers, settings.ai_daily_budget
            plan = [
                ("healthy, 1 worker, shared store", 1, True, 0.0, budget),
                (f"healthy, {w} workers, shared", w, True, 0.0, budget),
                (f"healthy, {w} workers, nothing shared", w, False, 0.0, budget),
                (f"half failing, {w} workers, shared", w, True, 0.5, budget),
            ]
            for n, (name, workers, shared, fail_rate, day_budget) in enumerate(plan):
                r = await cluster_run(
                    fake,
                    args,
                    n,
                    name=name,
                    workers=workers,
                    shared=shared,
                    fail_rate=fail_rate,
                    budget=day_budget,
                    settings=settings,
                )
                results.append(r)
                show_cluster(r, args.players)
            tight = round(results[1].cost * args.tight_share, 6)
            for n, fail_rate in ((len(plan), 0.0), (len(plan) + 1, 0.5)):
                name = f"budget {tight:g} ({args.tight_share:g} x), fail {fail_rate:g}, {args.workers} workers"
                r = await cluster_run(
                    fake,
                    args,
                    n,
                    name=name,
                    workers=args.workers,
                    shared=True,
                    fail_rate=fail_rate,
                    budget=tight,
                    settings=settings,
                )
                results.append(r)
                show_cluster(r, args.players)

        trio.run(runs)
    finally:
        fake.close()
    ok = True
    for r in results:
        if not r.shared:
            continue
        within = r.cost <= r.budget + 1e-12 and r.max_player_calls <= cap and r.charged >= r.cost - 1e-9
        print(
            f"check {r.name}: upstream cost {r.cost:.5f} <= budget {r.budget:g}, max calls/player "
            f"{r.max_player_calls} <= {cap}, charged {r.charged:.5f} >= billed: {'ok' if within else 'FAILED'}"
        )
        ok = ok and within
    one, two, apart = results[0], results[1], results[2]
    keys = small_talk_keys(args)
    print(
        f"{args.workers} workers shared / 1 worker: calls {two.calls / one.calls:.3f}, cost {two.cost / one.cost:.3f}, "
        f"cache hits {(two.cache_hits + two.shared_hits) / max(1, one.cache_hits + one.shared_hits):.3f}; "
        f"nothing shared / 1 worker: calls {apart.calls / one.calls:.3f}, cost {apart.cost / one.cost:.3f}"
    )
    # A key first asked on several workers at the same moment (before the
    # first answer is stored) is called once per worker: at most this many more.
    bound = (args.workers - 1) * keys
    same = two.calls - one.calls <= bound
    verdict = "met" if same else "NOT met"
    print(
        f"target: {args.workers} shared workers call the upstream as often as one, but for keys first asked on "
        f"several at once: {two.calls - one.calls:+d} calls <= {bound} ({args.workers - 1} x {keys} small-talk "
        f"keys): {verdict}; nothing shared: {apart.calls - one.calls:+d}"
    )
    return 0 if ok else 1


# ----------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    )


def show(r: Result, players: int) -> None:
    sources = ", ".join(f"{k} {v}" for k, v in sorted(r.sources.items()))
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.reasons.items())) or "none"
    print(
        f"  {r.client:5}  calls {r.calls:6d}  per player-day {r.calls / players:6.2f}   "
        f"cost {r.cost:9.5f}  per player-day {r.cost / players:.7f}   "
        f"max calls/player {r.max_player_calls:3d}   {r.seconds:6.1f} s"
    )
    print(f"         replies: {sources}; fallbacks: {reasons}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ai", description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--says", type=int, default=25, help="says per player per simulated day")
    parser.add_argument("--time-scale", type=float, default=0.01, help="factor on backoff, cooldown and latency")
    parser.add_argument(
        "--tight-share", type=float, default=0.3, help="budget of the extra run, as a share of ours' healthy spend"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="with 2 or more: that many worker processes sharing the database of --db (the cluster runs)",
    )
    parser.add_argument("--db", help="mysql://user@host:port/db the workers share (created tables: migrated)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a cluster run's worker
    args = parser.parse_args(argv)
    if args.worker:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        job = WorkerJob(**orjson.loads(sys.stdin.readline()))
        print("RESULT", orjson.dumps(trio.run(worker_main, job)).decode(), flush=True)
        return 0
    if args.workers > 1 and not (args.db or "").startswith("mysql://"):
        parser.error("--workers 2 or more needs --db mysql://... (the database the workers share)")
    # One log line per fallback is right for a server, not for 100k replays.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    content = content_pkg.load()
    rng = random.Random(args.seed)
    players = make_players(content, args.players, rng)
    says = make_says(players, args.says, rng)
    share = sum(s.small_talk for s in says) / len(says)
    settings = Settings.defaults(ai_api_key="bench")
    print(f"command: {' '.join(['scripts/bench_ai', *(argv if argv is not None else sys.argv[1:])])}")
    print(f"machine: {machine()}")
    print(
        f"workload: {args.players} players x {args.says} says = {len(says)} says in one simulated day; "
        f"{share:.1%} greetings/small talk; workers {settings.ai_workers}, queue {settings.ai_queue}, "
        f"budgets {settings.ai_player_daily_calls} calls/player, {settings.ai_daily_budget:g}/day; "
        f"cache {settings.ai_cache_size} x {settings.ai_cache_ttl:g} s (simulated); time scale {args.time_scale:g}"
    )
    if args.workers > 1:

        async def migrate() -> None:
            async with open_store(args.db) as store:
                await store.migrate()

        trio.run(migrate)
        return cluster_main(args, settings)
    fake = Fake()
    results: dict[tuple[str, str], Result] = {}
    try:

        async def all_runs() -> None:
            for scenario, fail_rate in (("healthy", 0.0), ("half failing", 0.5)):
                print(f"\n{scenario} upstream (fail rate {fail_rate:g}, 500s):")
                for kind in ("naive", "ours"):
                    r = await run_once(
                        fake,
                        content,
                        players,
                        says,
                        client_kind=kind,
                        scenario=scenario,
                        fail_rate=fail_rate,
                        settings=settings,
                        scale=args.time_scale,
                    )
                    results[(scenario, kind)] = r
                    show(r, args.players)
                n, o = results[(scenario, "naive")], results[(scenario, "ours")]
                print(f"  ours/naive: calls {o.calls / n.calls:.3f}, cost {o.cost / n.cost:.3f}")
            budget = round(results[("healthy", "ours")].cost * args.tight_share, 6)
            tight = settings.replace(ai_daily_budget=budget)
            print(f"\ntight budget ({budget:g}/day: {args.tight_share:g} of ours' healthy spend), healthy upstream:")
            r = await run_once(
                fake,
                content,
                players,
                says,
                client_kind="ours",
                scenario="tight",
                fail_rate=0.0,
                settings=tight,
                scale=args.time_scale,
            )
            results[("tight", "ours")] = r
            show(r, args.players)

        trio.run(all_runs)
    finally:
        fake.close()
    ok = True
    for (scenario, kind), r in results.items():
        if kind != "ours":
            continue
        assert r.budget is not None and r.governor_spent is not None
        within = r.cost <= r.budget + 1e-12 and r.max_player_calls <= settings.ai_player_daily_calls
        within = within and r.governor_spent >= r.cost - 1e-9  # we never charge less than was billed
        print(
            f"check {scenario}: upstream cost {r.cost:.5f} <= budget {r.budget:g}, "
            f"max calls/player {r.max_player_calls} <= {settings.ai_player_daily_calls}, "
            f"charged {r.governor_spent:.5f} >= billed: {'ok' if within else 'FAILED'}"
        )
        ok = ok and within
    for scenario in ("healthy", "half failing"):
        n, o = results[(scenario, "naive")], results[(scenario, "ours")]
        target = o.calls <= n.calls / 2 and o.cost <= n.cost / 2
        print(f"target {scenario}: ours at most half the naive calls and cost: {'met' if target else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
