"""Single-flight over memory only, on a virtual clock (autojump is safe here:
no sockets)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from baolife.ai.flight import SingleFlight
from baolife.ai.reply import Fallback


class Upstream:
    def __init__(self, seconds: float = 1.0, fail: str | None = None) -> None:
        self.calls = 0
        self.running = 0
        self.seconds = seconds
        self.fail = fail

    async def fetch(self) -> str:
        self.calls += 1
        number = self.calls
        self.running += 1
        try:
            await trio.sleep(self.seconds)
        finally:
            self.running -= 1
        if self.fail:
            raise Fallback(self.fail)
        return f"answer {number}"


async def test_callers_of_one_key_share_one_call(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    flights = SingleFlight()
    flights.bind(nursery)
    up = Upstream()
    results: dict[str, list[tuple[str, bool]]] = {"k": [], "other": []}

    async def ask(key: str) -> None:
        results[key].append(await flights.run(key, up.fetch))

    with trio.fail_after(5):
        async with trio.open_nursery() as callers:
            for _ in range(10):
                callers.start_soon(ask, "k")
            callers.start_soon(ask, "other")
    assert up.calls == 2
    assert len({text for text, _ in results["k"]}) == 1
    assert results["k"][0][0] != results["other"][0][0]
    assert sum(shared for _, shared in results["k"]) == 9 and not results["other"][0][1]
    assert flights.statistics().in_flight == 0
    # Done flights are not reused: a later call is a new one.
    assert (await flights.run("k", up.fetch))[0] == "answer 3"


async def test_a_fallback_reaches_every_waiter(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    flights = SingleFlight()
    flights.bind(nursery)
    up = Upstream(fail="budget")
    reasons: list[str] = []

    async def ask() -> None:
        try:
            await flights.run("k", up.fetch)
        except Fallback as exc:
            reasons.append(exc.reason)

    with trio.fail_after(5):
        async with trio.open_nursery() as callers:
            for _ in range(3):
                callers.start_soon(ask)
    assert reasons == ["budget"] * 3 and up.calls == 1


async def test_the_flight_outlives_a_leaving_leader_but_not_its_last_waiter(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    flights = SingleFlight()
    flights.bind(nursery)
    up = Upstream(seconds=10)
    got: list[str] = []

    async def follower() -> None:
        got.append((await flights.run("k", up.fetch))[0])

    with trio.fail_after(30):
        async with trio.open_nursery() as callers:
            with trio.move_on_after(1):  # the leader leaves after 1 s
                callers.start_soon(follower)
                await flights.run("k", up.fetch)
            assert up.running == 1  # still wanted by the follower
        assert got == ["answer 1"]
        # Now a flight whose only waiter leaves is cancelled at once.
        with trio.move_on_after(1):
            await flights.run("lonely", up.fetch)
        await trio.testing.wait_all_tasks_blocked()
        assert up.running == 0 and flights.statistics().in_flight == 0


async def test_run_before_bind_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="bind"):
        await SingleFlight().run("k", Upstream().fetch)
