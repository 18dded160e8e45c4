"""Single-flight over memory only, on a virtual clock (autojump is safe here:
no sockets)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from baolife.ai.flight import SingleFlight
from baolife.ai.reply import Fallback, FallbackReason


class Upstream:
    def __init__(self, seconds: float = 1.0, fail: FallbackReason | None = None) -> None:
        self.calls = 0
        self.running = 0
        self.seconds = seconds
        self.fail = fail

    async def fetch(self) -> str | Fallback:
        self.calls += 1
        number = self.calls
        self.running += 1
        try:
            await trio.sleep(self.seconds)
        finally:
            self.running -= 1
        if self.fail:
            return Fallback(self.fail)
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
    up = Upstream(fail=FallbackReason.BUDGET)
    reasons: list[str] = []

    async def ask() -> None:
        outcome, _ = await flights.run("k", up.fetch)
        assert isinstance(outcome, Fallback)
        reasons.append(outcome.reason)

    with trio.fail_after(5):
        async with trio.open_nursery() as callers:
            for _ in range(3):
                callers.start_soon(ask)
    assert reasons == ["budget"] * 3 and up.calls == 1


async def test_a_fault_in_the_fetch_is_the_error_fallback_for_every_waiter(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    flights = SingleFlight()
    flights.bind(nursery)

    async def broken() -> str:
        await trio.sleep(1)
        raise KeyError("a bug")

    outcomes: list[tuple[str | Fallback, bool]] = []

    async def ask() -> None:
        outcomes.append(await flights.run("k", broken))

    with trio.fail_after(5):
        async with trio.open_nursery() as callers:
            for _ in range(3):
                callers.start_soon(ask)
    assert sorted(shared for _, shared in outcomes) == [False, True, True]
    assert {outcome for outcome, _ in outcomes} == {Fallback(FallbackReason.ERROR)}


async def test_the_flight_outlives_a_leaving_leader_but_not_its_last_waiter(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    flights = SingleFlight()
    flights.bind(nursery)
    up = Upstream(seconds=10)
    got: list[str | Fallback] = []

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
