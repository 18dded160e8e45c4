"""One budget and one reply cache across workers (issue 13.4).

The store's side (``ai_reserve``, ``ai_settle``, the day's budget, the cache
table) runs on SQLite and on MariaDB; the cluster's side runs two workers as
two stores (two connection pools) and two governors or NPC stacks on one
MariaDB, spending at once, against the fake OpenAI server over real HTTP.
MariaDB comes from ``BAOLIFE_TEST_MYSQL_URL`` as in tests/db (skipped without
it, mandatory under ``CI=true``).
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from helpers import Client, running_app
from npc_stack import Stack, npc_stack, say_job

from baolife.ai.budget import CostGovernor, Grant, utc_day
from baolife.ai.cache import SHARED_RETRY_SECONDS, ReplyCache
from baolife.ai.fake import FakeOpenAI
from baolife.ai.llm import LlmProvider
from baolife.config import Settings
from baolife.content.schema import Content
from baolife.db import open_store
from baolife.db.store import AiDay, Store, StoreUnavailable
from tests.db.mysql_admin import MysqlAdmin, reset_database

DAY = "2031-03-04"
PRICE_IN, PRICE_OUT = 1.0, 2.0  # per 1K tokens: budgets bind after a few calls


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A MariaDB database without our tables (dropped again after the test)."""
    url = os.environ.get("BAOLIFE_TEST_MYSQL_URL", "")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and BAOLIFE_TEST_MYSQL_URL is not set: the MariaDB tests are mandatory")
        pytest.skip("BAOLIFE_TEST_MYSQL_URL is not set (scripts/test starts MariaDB and sets it)")
    reset_database(url)
    yield url
    reset_database(url)


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue("mysql_url")
    return url


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Store]:
    async with open_store(url, pool_size=16) as store:
        await store.migrate()
        yield store


def governor(store: Store | None, **kw: Any) -> CostGovernor:
    args: dict[str, Any] = {
        "player_daily_calls": 1000,
        "daily_budget": 1.0,
        "price_in": PRICE_IN,
        "price_out": PRICE_OUT,
        "pending_limit": 1000,
        "today": lambda: DAY,
        "ledger": store,
    }
    return CostGovernor(**(args | kw))


def distinct(player: int, n: int) -> str:
    return f"Something new number {n} happened to me today, player {player}"


# ----------------------------------------------------------------- the store's side


async def test_the_ledger_reserves_settles_and_refuses_with_nothing_counted(store_url: str) -> None:
    with trio.fail_after(30):
        async with migrated(store_url) as store:
            assert await store.ai_day(DAY) == AiDay()
            # 0.3 each against 1.0: three fit, the fourth is refused and counts nothing.
            assert [await store.ai_reserve(DAY, p, 0.3, 2, 1.0) for p in (1, 1, 2)] == [None, None, None]
            assert await store.ai_reserve(DAY, 3, 0.3, 2, 1.0) == "budget"
            assert await store.ai_reserve(DAY, 1, 0.01, 2, 1.0) == "player"
            day = await store.ai_day(DAY)
            assert (day.calls, day.spent, day.budget) == (3, 0.0, None)
            assert day.reserved == pytest.approx(0.9)
            calls, _ = await store.ai_usage(DAY)
            assert {p: n for p, n in calls.items() if n} == {1: 2, 2: 1}  # player 3 refused: no call counted
            # Two calls end, one cheap, one unbilled: 0.6 released, 0.05 spent.
            await store.ai_settle(DAY, 0.6, [(1, 0.05), (2, 0.0)])
            day = await store.ai_day(DAY)
            assert day.spent == pytest.approx(0.05) and day.reserved == pytest.approx(0.3)
            assert await store.ai_reserve(DAY, 3, 0.3, 2, 1.0) is None
            assert (await store.ai_usage(DAY))[1] == pytest.approx(0.05)
            # An operator's budget for the day binds whatever the worker's setting says.
            await store.set_ai_day_budget(DAY, 0.5)
            assert (await store.ai_day(DAY)).budget == 0.5
            assert await store.ai_reserve(DAY, 4, 0.01, 2, 100.0) == "budget"
            await store.set_ai_day_budget(DAY, None)
            assert await store.ai_reserve(DAY, 4, 0.01, 2, 100.0) is None
            assert await store.ai_reserve(DAY, 5, 0.01, 0, 100.0) == "player"  # a cap of 0
            assert (await store.ai_day("2031-03-05")).calls == 0  # days are apart


async def test_a_days_row_starts_from_the_usage_written_behind(store_url: str) -> None:
    """Workers of the release before wrote usage behind: after an upgrade
    mid-day the shared budget counts what they spent."""
    with trio.fail_after(30):
        async with migrated(store_url) as store:
            await store.add_ai_usage(DAY, 7, 3, 0.75)
            assert await store.ai_reserve(DAY, 8, 0.3, 5, 1.0) == "budget"
            assert await store.ai_reserve(DAY, 8, 0.2, 5, 1.0) is None
            day = await store.ai_day(DAY)
            assert (day.spent, day.reserved) == (0.75, pytest.approx(0.2))
            await store.add_ai_usage("2031-03-05", 7, 1, 0.5)
            await store.set_ai_day_budget("2031-03-05", 2.0)
            assert (await store.ai_day("2031-03-05")) == AiDay(spent=0.5, budget=2.0)


async def test_the_cache_table_keeps_replies_until_they_expire(store_url: str) -> None:
    with trio.fail_after(30):
        async with migrated(store_url) as store:
            await store.ai_cache_put([(b"k1" * 8, "Hello dear", 100.0), (b"k2" * 8, "Hi", 50.0)])
            assert await store.ai_cache_get(b"k1" * 8, 60.0) == ("Hello dear", 100.0)
            assert await store.ai_cache_get(b"k2" * 8, 60.0) is None  # expired
            await store.ai_cache_put([(b"k2" * 8, "Hi again", 200.0)])  # replaced
            assert await store.ai_cache_get(b"k2" * 8, 60.0) == ("Hi again", 200.0)
            assert await store.ai_cache_prune(150.0, 10) == 1
            assert await store.ai_cache_get(b"k1" * 8, 0.0) is None
            assert await store.ai_cache_prune(150.0, 10) == 0


# ----------------------------------------------------------------- two workers, one budget


async def test_two_workers_spending_at_once_never_pass_the_budget(mysql_url: str) -> None:
    """Two stores (two pools, as two processes have) and two governors on one
    MariaDB; 16 tasks each reserve, "call" and settle as fast as they can,
    each call billed a random share of its worst case, some unbilled, some
    at the worst case, until the budget refuses them."""
    budget, rng = 2.0, random.Random(13)
    billed: list[float] = []
    refused: list[str] = []

    async def spender(g: CostGovernor, player: int) -> None:
        while True:
            grant = await g.reserve(player, 40, 60)  # worst case 0.04 + 0.12 = 0.16
            if not isinstance(grant, Grant):
                refused.append(grant)
                return
            await trio.sleep(rng.uniform(0, 0.01))  # the upstream call
            kind = rng.random()
            if kind < 0.2:
                g.settle_unbilled(grant)
                billed.append(0.0)
            elif kind < 0.4:
                billed.append(g.settle_worst(grant))
            else:
                billed.append(g.settle(grant, rng.randint(1, 40), rng.randint(1, 60)))

    with trio.fail_after(60):
        async with migrated(mysql_url) as a, migrated(mysql_url) as b:
            ga, gb = governor(a, daily_budget=budget), governor(b, daily_budget=budget)
            # A slow machine must not turn a reservation into a refusal here:
            # this test is about atomicity (the timeout has its own test).
            ga.reserve_seconds = gb.reserve_seconds = 30.0
            async with trio.open_nursery() as workers:
                await workers.start(lambda task_status: ga.run(a, interval=0.05, task_status=task_status))
                await workers.start(lambda task_status: gb.run(b, interval=0.05, task_status=task_status))
                async with trio.open_nursery() as calls:
                    for i in range(32):  # one per connection of the two pools
                        calls.start_soon(spender, ga if i % 2 else gb, 1 + i % 7)
                # A spender refused while others held reservations may have
                # left room they did not use; one alone spends what is left.
                await spender(ga, 1)
                await ga.close(a)
                await gb.close(b)
                workers.cancel_scope.cancel()
            day = await a.ai_day(DAY)
            per_player, player_cost = await a.ai_usage(DAY)
    assert sum(billed) <= budget + 1e-9
    assert set(refused) == {"budget"} and len(refused) == 33
    # Every settlement arrived: nothing left reserved, and the store's spend
    # is what was charged (never less than billed).
    assert day.reserved == pytest.approx(0.0, abs=1e-9)
    assert day.spent == pytest.approx(sum(billed)) and player_cost == pytest.approx(sum(billed))
    assert day.calls == len(billed) == sum(per_player.values())  # a refused call is given back
    # Tight, not timid: the budget was spent down to less than one worst case.
    assert day.spent > budget - 0.16 - 1e-9
    assert len(billed) > budget / 0.16  # settling below the worst case made room for more calls


async def test_a_players_daily_calls_hold_across_two_workers(mysql_url: str) -> None:
    granted: list[Grant] = []
    refusals: list[str] = []

    async def ask(g: CostGovernor) -> None:
        grant = await g.reserve(42, 10, 10)
        (granted if isinstance(grant, Grant) else refusals).append(grant)  # type: ignore[arg-type]

    with trio.fail_after(30):
        async with migrated(mysql_url) as a, migrated(mysql_url) as b:
            ga, gb = governor(a, player_daily_calls=7), governor(b, player_daily_calls=7)
            ga.reserve_seconds = gb.reserve_seconds = 30.0
            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(ask, ga if i % 2 else gb)
            calls, _ = await a.ai_usage(DAY)
            day = await b.ai_day(DAY)
    assert len(granted) == 7 and refusals == ["player_budget"] * 13
    assert calls == {42: 7} and day.calls == 7


async def test_a_day_budget_set_on_one_worker_binds_the_other(mysql_url: str) -> None:
    with trio.fail_after(30):
        async with migrated(mysql_url) as a, migrated(mysql_url) as b:
            ga, gb = governor(a, daily_budget=5.0), governor(b, daily_budget=5.0)
            assert isinstance(await gb.reserve(1, 10, 10), Grant)
            await ga.set_day_budget(0.01)  # below what is reserved: nothing more fits
            assert await gb.reserve(2, 10, 10) == "budget"
            usage = await gb.usage_today()
            assert (usage.budget, usage.budget_left, usage.budget_set, usage.calls) == (0.01, 0.0, True, 1)
            await ga.set_day_budget(None)
            assert isinstance(await gb.reserve(2, 10, 10), Grant)
            with pytest.raises(ValueError):
                await ga.set_day_budget(float("nan"))
            with pytest.raises(ValueError):
                await ga.set_day_budget(-1.0)
            assert (await a.ai_day(DAY)).budget is None  # a bad amount changed nothing


async def test_a_store_that_cannot_reserve_refuses_the_call(mysql_url: str) -> None:
    with trio.fail_after(30):
        async with migrated(mysql_url) as a:
            g = governor(a)
        # The store is closed now: every reservation fails, and is refused.
        assert await g.reserve(1, 10, 10) == "budget_unknown"
        assert g.statistics().reserve_failures == 1


class SettleFails:
    """A store whose settlements fail (as when the answer to one is lost)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def ai_settle(self, day: str, released: float, costs: Any) -> None:
        raise StoreUnavailable("lost")


async def test_a_settlement_that_fails_leaves_the_calls_charged_at_their_worst(tmp_path: Path) -> None:
    """Not retried (a retry after a lost answer would release twice): the
    reservation stays, so the budget errs towards spending less."""
    with trio.fail_after(10):
        async with migrated(f"sqlite:///{tmp_path}/s.db") as inner:
            store = SettleFails(inner)
            g = governor(store)  # type: ignore[arg-type]
            grant = await g.reserve(1, 100, 100)
            assert isinstance(grant, Grant)
            g.settle(grant, 10, 10)  # cost 0.03 of the 0.3 reserved
            await g.send_settlements(store)  # type: ignore[arg-type]
            day = await inner.ai_day(DAY)
    assert g.statistics().settle_failures == 1 and not g.pending
    assert day.reserved == pytest.approx(0.3) and day.spent == 0.0


class GatedLedger:
    """A SQLite store posing as a shared one, whose reservations wait for ``gate``."""

    kind = "mysql"

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.gate = trio.Event()
        self.entered = trio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def ai_reserve(self, *args: Any) -> str | None:
        self.entered.set()
        await self.gate.wait()
        verdict: str | None = await self.inner.ai_reserve(*args)
        return verdict


async def test_a_player_who_leaves_during_a_reservation_costs_nothing(
    fake: FakeOpenAI, content: Content, tmp_path: Path
) -> None:
    """The reservation is shielded, so the governor knows it was made; the
    call is then not made, and its reservation is released in the store."""
    with trio.fail_after(20):
        async with migrated(f"sqlite:///{tmp_path}/g.db") as inner:
            store = GatedLedger(inner)
            async with npc_stack(fake, content, store=store, today=lambda: DAY) as stack:  # type: ignore[arg-type]
                assert stack.provider.governor.shared
                stack.submit(say_job(1, distinct(1, 0)))
                await store.entered.wait()
                stack.service.cancel(1)
                await stack.until_replies(1)  # answered at once, the reservation still out
                store.gate.set()
            day = await inner.ai_day(DAY)
            calls, cost = await inner.ai_usage(DAY)
    assert fake.stats.calls == 0 and stack.reasons == {"disconnected": 1}
    assert (day.reserved, day.spent, day.calls) == (0.0, 0.0, 1)
    assert (calls, cost) == ({1: 1}, 0.0)  # a call counted for the player, nothing billed


@asynccontextmanager
async def two_stacks(fake: FakeOpenAI, content: Content, url: str, **settings: Any) -> AsyncIterator[list[Stack]]:
    async with migrated(url) as a, migrated(url) as b:
        async with (
            npc_stack(fake, content, store=a, today=lambda: DAY, **settings) as sa,
            npc_stack(fake, content, store=b, today=lambda: DAY, **settings) as sb,
        ):
            assert sa.provider.governor.shared and sa.provider.cache.store is not None
            for stack in (sa, sb):
                # A slow shared machine must not turn a lookup into a miss:
                # these tests are about sharing (the bound has its own test).
                stack.provider.cache.get_seconds = 30.0
                stack.provider.governor.reserve_seconds = 30.0
            yield [sa, sb]


async def test_two_workers_with_a_half_failing_upstream_stay_within_both_budgets(
    fake: FakeOpenAI, content: Content, mysql_url: str
) -> None:
    fake.behaviour.fail_rate, fake.behaviour.failure, fake.behaviour.latency = 0.5, "500", 0.02
    budget = 4.0  # a private line's call reserves ~0.8 and costs ~0.2
    with trio.fail_after(40):
        async with two_stacks(
            fake,
            content,
            mysql_url,
            ai_daily_budget=budget,
            ai_price_in=PRICE_IN,
            ai_price_out=PRICE_OUT,
            ai_player_daily_calls=3,
            ai_queue=1000,
        ) as stacks:
            # Every player talks on both workers at once (as if reconnecting to the other).
            for stack in stacks:
                stack.submit(*(say_job(p, distinct(p, n)) for n in range(2) for p in range(1, 31)))
            for stack in stacks:
                await stack.until_replies(60)
        # The stacks have stopped: every settlement was sent.
        async with migrated(mysql_url) as store:
            day = await store.ai_day(DAY)
    billed = fake.stats.cost(PRICE_IN, PRICE_OUT)
    assert 0 < billed <= budget
    assert max(fake.stats.by_user.values()) <= 3
    assert fake.stats.outcomes["500"] > 0 and fake.stats.outcomes["ok"] > 0  # half failing
    assert sum(s.reasons.get("budget", 0) for s in stacks) > 0  # the budget bound the cluster
    # 500s are not billed: what the store holds as spent is what was billed.
    assert day.spent + day.reserved == pytest.approx(billed)


# ----------------------------------------------------------------- one cache


async def test_a_greeting_answered_on_one_worker_is_a_hit_on_the_other(
    fake: FakeOpenAI, content: Content, mysql_url: str
) -> None:
    with trio.fail_after(30):
        async with two_stacks(fake, content, mysql_url) as (a, b):
            first = await a.ask(say_job(1, "hello"))
            await a.provider.cache.flush()  # its own task writes soon; now, for the test
            assert a.provider.cache.statistics().shared_writes == 1
            second = await b.ask(say_job(2, "hi mom"))  # the same intent, persona, role, stage, band
            third = await b.ask(say_job(3, "hey"))  # now in b's local level
            assert first.text == second.text == third.text
            assert a.sources == {"llm": 1} and b.sources == {"cache": 2}
            st = b.provider.cache.statistics()
            assert (st.shared_hits, st.hits, st.misses) == (1, 1, 0)
            upstream = b.service.statistics().upstream  # what the metrics read
            assert upstream is not None and (upstream.cache_hits, upstream.cache_shared_hits) == (2, 1)
    assert fake.stats.calls == 1


class FlakyCacheStore:
    """A SQLite store whose cache calls fail while ``down``; counts them."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False
        self.asked = 0

    async def ai_cache_get(self, key: bytes, now: float) -> tuple[str, float] | None:
        self.asked += 1
        if self.down:
            raise StoreUnavailable("cut")
        return await self.inner.ai_cache_get(key, now)

    async def ai_cache_put(self, entries: Any) -> None:
        if self.down:
            raise StoreUnavailable("cut")
        await self.inner.ai_cache_put(entries)

    async def ai_cache_prune(self, now: float, limit: int) -> int:
        return await self.inner.ai_cache_prune(now, limit)


async def test_a_shared_cache_outage_falls_back_to_the_local_cache(tmp_path: Path) -> None:
    key_a = ("warm_parent", "mother", "adult", "close", "greeting")
    key_b = ("warm_parent", "mother", "adult", "close", "how_are_you")
    with trio.fail_after(10):
        async with migrated(f"sqlite:///{tmp_path}/c.db") as inner:
            store = FlakyCacheStore(inner)
            cache = ReplyCache(10, 3600, model="m", store=store)  # type: ignore[arg-type]
            async with trio.open_nursery() as nursery:
                await nursery.start(cache.run)
                cache.put(key_a, "Hello, love")
                await cache.flush()
                assert cache.statistics().shared_writes == 1
                store.down = True
                assert await cache.get(key_a) == "Hello, love"  # local: the outage costs nothing
                assert await cache.get(key_b) is None  # a miss: the upstream will be asked
                cache.put(key_b, "Fine, and you?")  # kept locally, not written while down
                assert await cache.get(key_b) == "Fine, and you?"
                asked = store.asked
                cache.local.clear()
                assert await cache.get(key_a) is None  # down: not asked again for a while
                assert store.asked == asked
                nursery.cancel_scope.cancel()
            st = cache.statistics()
            assert st.shared_errors == 1 and st.shared_dropped == 1 and st.misses == 2


def test_the_shared_cache_is_asked_again_after_an_outage(tmp_path: Path) -> None:
    key = ("warm_parent", "mother", "adult", "close", "greeting")
    clock = trio.testing.MockClock()

    async def body() -> None:
        async with migrated(f"sqlite:///{tmp_path}/c.db") as inner:
            await inner.ai_cache_put([(ReplyCache(1, 1, model="m").digest(key), "Hello, love", 4e9)])
            store = FlakyCacheStore(inner)
            cache = ReplyCache(10, 3600, model="m", store=store)  # type: ignore[arg-type]
            store.down = True
            assert await cache.get(key) is None
            store.down = False
            assert await cache.get(key) is None  # still resting
            clock.jump(SHARED_RETRY_SECONDS)
            assert await cache.get(key) == "Hello, love"
            assert cache.statistics().shared_hits == 1

    # Its own run, on a clock that moves only when told (SQLite's thread waits
    # in real time meanwhile).
    trio.run(body, clock=clock)


# ----------------------------------------------------------------- one worker, SQLite: as before


class NoLedger:
    """Any call to the shared budget or cache is a failure of this test."""

    kind = "sqlite"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the single-worker path called the store's {name}")


async def test_on_sqlite_the_budget_and_cache_stay_in_memory(content: Content) -> None:
    s = Settings.defaults(ai_api_key="k", ai_player_daily_calls=1)
    provider = LlmProvider.from_settings(s, content, NoLedger())  # type: ignore[arg-type]
    g = provider.governor
    assert not g.shared and provider.cache.store is None
    g.loaded = True
    # Admission is the in-memory check: it never awaits.
    with trio.testing.assert_no_checkpoints():
        grant = await g.reserve(1, 10, 10)
        assert isinstance(grant, Grant)
        assert await g.reserve(1, 10, 10) == "player_budget"
        assert await provider.cache.get(("p", "mother", "adult", "close", "greeting")) is None


async def test_on_sqlite_a_day_budget_set_live_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/b.db"
    with trio.fail_after(10):
        async with migrated(url) as store:
            g = governor(None, daily_budget=5.0)
            g.store = store
            g.loaded = True
            await g.set_day_budget(0.001)
            assert g.admit(1, 10, 10) == "budget"
            again = governor(None, daily_budget=5.0)
            await again.load(store)
            assert again.budget() == 0.001 and again.admit(1, 10, 10) == "budget"
            usage = await again.usage_today()
            assert (usage.budget, usage.budget_set) == (0.001, True)
            # The next UTC day starts from the setting again.
            again.today = lambda: "2031-03-05"
            assert isinstance(again.admit(1, 10, 10), Grant) and again.budget() == 5.0


# ----------------------------------------------------------------- the tick never waits


async def test_the_tick_loop_never_waits_on_a_reservation(settings: Settings, fake: FakeOpenAI, mysql_url: str) -> None:
    """The day's budget row is locked behind the store's back, so a
    reservation waits in the database: the player's job waits, the ticks do
    not, and the player gets a scripted line in time."""
    s = settings.replace(db_url=mysql_url, ai_api_key="k", ai_base_url=fake.base_url, ai_timeout=1.5)
    with trio.fail_after(30):
        async with running_app(s) as app, Client.connect(app.ws_port) as c, MysqlAdmin.open(mysql_url) as admin:
            assert app.npc.provider.governor.shared  # type: ignore[attr-defined]
            _, welcome = await c.register("Ana Tran")
            npc = welcome["snapshot"]["npcs"][0]["id"]
            await admin.execute("INSERT IGNORE INTO ai_budget (day) VALUES (%s)", (utc_day(),))
            await admin.execute("BEGIN")
            await admin.execute("SELECT * FROM ai_budget WHERE day = %s FOR UPDATE", (utc_day(),))
            tick, started = app.loop.tick, trio.current_time()
            ref = await c.send("say", npc=npc, text="I passed my driving test today")
            reply = await c.op("npc_say", ref=ref)
            waited = trio.current_time() - started
            ticks = app.loop.tick - tick
            await admin.execute("ROLLBACK")
            reasons = app.npc.statistics().reasons
    assert not reply["text"].startswith("#")  # scripted, in character
    assert set(reasons) <= {"budget_unknown", "timeout"} and sum(reasons.values()) == 1
    assert waited >= 1.0
    # The loop kept ticking meanwhile (waiting on the database it would have
    # made none; the bound leaves room for a loaded machine's late ticks).
    assert ticks >= 0.5 * s.tick_hz * waited
    assert fake.stats.calls == 0
