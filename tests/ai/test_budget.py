"""The cost governor: admission, reservations, settlement, days, and the
write-behind of usage to a real SQLite store (made to fail on demand)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from baolife.ai.budget import CostGovernor, Grant
from baolife.db.sqlite import SqliteStore, open_sqlite
from baolife.db.store import AiDay, StoreUnavailable


def governor(**kw: Any) -> CostGovernor:
    args: dict[str, Any] = {
        "player_daily_calls": 30,
        "daily_budget": 1.0,
        "price_in": 1.0,
        "price_out": 2.0,
        "pending_limit": 100,
        "today": lambda: "2030-01-01",
    }
    g = CostGovernor(**(args | kw))
    g.loaded = True
    return g


def test_costs_are_priced_per_thousand_tokens() -> None:
    assert governor().cost(500, 250) == pytest.approx(0.5 + 0.5)


def test_reservations_hold_the_budget_with_calls_in_flight() -> None:
    g = governor(daily_budget=1.0)
    # Worst case 0.1 + 0.2 = 0.3 each: three fit, the fourth would pass 1.0.
    grants = [g.admit(p, 100, 100) for p in (1, 2, 3)]
    assert all(isinstance(x, Grant) for x in grants)
    assert g.admit(4, 100, 100) == "budget"
    # Settling at the real (smaller) cost frees room for more.
    g.settle(grants[0], 20, 10)  # type: ignore[arg-type]
    assert g.spent == pytest.approx(0.04) and g.reserved == pytest.approx(0.6)
    assert isinstance(g.admit(4, 100, 100), Grant)


def test_a_call_that_cost_nothing_or_may_have_cost_everything() -> None:
    g = governor()
    a, b, c = (g.admit(1, 100, 100) for _ in range(3))
    g.settle_unbilled(a)  # type: ignore[arg-type]
    g.settle_worst(b)  # type: ignore[arg-type]
    g.settle(c, None, None)  # type: ignore[arg-type] # no usage reported: worst case
    assert g.spent == pytest.approx(0.6) and g.reserved == pytest.approx(0.0)
    assert g.calls[1] == 3  # every attempt is a call, billed or not
    assert g.pending[("2030-01-01", 1)] == [3, pytest.approx(0.6)]


def test_player_calls_are_capped_and_a_new_day_starts_fresh() -> None:
    day = ["2030-01-01"]
    g = governor(player_daily_calls=2, today=lambda: day[0])
    for _ in range(2):
        grant = g.admit(7, 10, 10)
        assert isinstance(grant, Grant)
        g.settle(grant, 10, 10)
    assert g.admit(7, 10, 10) == "player_budget"
    assert isinstance(g.admit(8, 10, 10), Grant)
    late = g.admit(8, 10, 10)
    day[0] = "2030-01-02"
    assert isinstance(g.admit(7, 10, 10), Grant)
    assert g.spent == 0.0
    # A call admitted yesterday is charged to yesterday.
    g.settle(late, 10, 10)  # type: ignore[arg-type]
    assert g.spent == 0.0 and g.pending[("2030-01-01", 8)][1] > 0


def test_nothing_is_admitted_before_todays_usage_is_known() -> None:
    g = governor()
    g.loaded = False
    assert g.admit(1, 10, 10) == "budget_unknown"
    g.merge("2030-01-01", {1: 29}, 0.5)
    assert isinstance(g.admit(1, 10, 10), Grant)
    assert g.admit(1, 10, 10) == "player_budget"


def test_too_much_unwritten_usage_refuses_new_players_not_known_ones() -> None:
    g = governor(pending_limit=2)
    g.admit(1, 10, 10)
    g.admit(2, 10, 10)
    assert g.admit(3, 10, 10) == "usage_backlog"
    assert isinstance(g.admit(1, 10, 10), Grant)


def test_merge_takes_the_larger_of_stored_and_local_counts() -> None:
    g = governor()
    grant = g.admit(1, 10, 10)
    g.settle(grant, 10, 10)  # type: ignore[arg-type]
    # Another process spent 0.5 and player 2 made 4 calls there.
    g.merge("2030-01-01", {2: 4}, 0.5)
    assert g.calls == {1: 1, 2: 4}
    assert g.spent == pytest.approx(0.5 + g.cost(10, 10))
    g.merge("2029-12-31", {3: 9}, 9.0)  # another day: ignored
    assert 3 not in g.calls


class FlakyStore:
    """The SQLite store, failing every call while ``down``."""

    kind = "flaky"

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.down = False
        self.writes = 0

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        if self.down:
            raise StoreUnavailable("cut")
        self.writes += 1
        await self.inner.add_ai_usage(day, player_id, calls, cost)

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        if self.down:
            raise StoreUnavailable("cut")
        return await self.inner.ai_usage(day)

    async def ai_day(self, day: str) -> AiDay:
        if self.down:
            raise StoreUnavailable("cut")
        return await self.inner.ai_day(day)


@asynccontextmanager
async def flaky(tmp_path: Path) -> AsyncIterator[FlakyStore]:
    async with open_sqlite(f"sqlite:///{tmp_path}/u.db") as store:
        await store.migrate()
        yield FlakyStore(store)


async def test_usage_is_written_behind_and_nothing_is_lost_while_the_store_is_down(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with flaky(tmp_path) as store:
            g = governor()
            for p in (1, 2):
                g.settle(g.admit(p, 10, 10), 10, 10)  # type: ignore[arg-type]
            store.down = True
            with pytest.raises(StoreUnavailable):
                await g.flush(store)  # type: ignore[arg-type]
            assert len(g.pending) == 2  # kept for the next try
            g.settle(g.admit(1, 10, 10), 10, 10)  # type: ignore[arg-type]
            store.down = False
            assert await g.flush(store) == 0  # type: ignore[arg-type]
            calls, cost = await store.ai_usage("2030-01-01")
            assert calls == {1: 2, 2: 1}
            assert cost == pytest.approx(3 * g.cost(10, 10))


async def test_a_store_down_at_start_admits_nothing_until_it_answers(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with flaky(tmp_path) as store:
            await store.inner.add_ai_usage("2030-01-01", 1, 5, 0.25)
            g = governor(player_daily_calls=6)
            g.loaded = False
            g.load_retry = 0.05
            store.down = True
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(g.run, store, interval=0.05))  # type: ignore[arg-type]
                assert g.admit(1, 10, 10) == "budget_unknown"
                store.down = False
                await g.ready.wait()  # the retry loop loaded it
                nursery.cancel_scope.cancel()
            assert g.spent == pytest.approx(0.25)
            assert isinstance(g.admit(1, 10, 10), Grant)
            assert g.admit(1, 10, 10) == "player_budget"
