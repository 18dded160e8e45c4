"""What a reservation of the shared LLM budget costs the database, counted
on the wire so it cannot creep back up.

Every upstream call of a worker on MySQL reserves its worst case first
(baolife/ai/budget.py), and the NPC reply waits for it. Each round trip
waits for the worker's loop and for a pooled connection: at 10,000 players
on MariaDB a reservation took 47 ms on average in two round trips, 32 ms in
one (docs/BENCHMARKS.md, issue 15).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from tests.db.mysql_admin import MysqlAdmin
from tests.db.test_login_round_trips import counted_store, trips

DAY = "2031-04-01"


async def test_a_reservation_is_one_round_trip_once_its_rows_exist(mysql_url: str) -> None:
    with trio.fail_after(30):
        async with counted_store(mysql_url) as (proxy, store), MysqlAdmin.open(mysql_url) as admin:

            def reserve(player: int, worst: float) -> Callable[[], Awaitable[str | None]]:
                return lambda: store.ai_reserve(DAY, player, worst, 2, 1.0)

            # The day's first call makes the day's row and the player's, then calls.
            assert await trips(proxy, reserve(1, 0.3)) == (2, None)
            assert await trips(proxy, reserve(1, 0.3)) == (1, None)
            # Another player's first call of the day: their row, then the call.
            assert await trips(proxy, reserve(2, 0.3)) == (2, None)
            # Refused: by the player's two calls, then by the budget (0.9 of 1.0
            # reserved); nothing is counted for either.
            assert await trips(proxy, reserve(1, 0.01)) == (3, "player")
            assert await trips(proxy, reserve(2, 0.3)) == (3, "budget")
            day = await store.ai_day(DAY)
            assert day.calls == 3 and day.reserved == pytest.approx(0.9)
            calls, _ = await store.ai_usage(DAY)
            assert calls == {1: 2, 2: 1}

            # A day's row deleted by hand is made again (from the day's usage).
            await admin.execute("DELETE FROM ai_budget WHERE day = %s", (DAY,))
            assert await trips(proxy, reserve(3, 0.3)) == (4, None)
            day = await store.ai_day(DAY)
            assert day.calls == 1 and day.reserved == pytest.approx(0.3)
            assert (await store.ai_usage(DAY))[0] == {1: 2, 2: 1, 3: 1}
