"""The NPC stack against the fake OpenAI server over real HTTP: budgets,
single-flight and cache, retries and Retry-After, the breaker, deadlines,
and cancellation (a player leaving, a shutdown).

Real sockets, so the real clock: every test has a ``trio.fail_after`` budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from npc_stack import npc_stack, say_job
from structlog.testing import capture_logs

from baolife.ai.budget import utc_day
from baolife.ai.fake import FakeOpenAI
from baolife.content.schema import Content
from baolife.db.sqlite import open_sqlite

PRICE_IN, PRICE_OUT = 1.0, 2.0  # per 1K tokens: big, so budgets bind after a few calls


def distinct(player: int, n: int) -> str:
    return f"Something new number {n} happened to me today, player {player}"


# ----------------------------------------------------------------- budgets


@pytest.mark.parametrize("failing", [False, True], ids=["healthy", "failing"])
async def test_a_player_never_makes_more_upstream_calls_than_the_daily_budget(
    fake: FakeOpenAI, content: Content, failing: bool
) -> None:
    if failing:
        fake.behaviour.fail_rate = 1.0  # every call a 500: retries must count too
    with trio.fail_after(20), capture_logs() as logs:
        async with npc_stack(fake, content, ai_player_daily_calls=4) as stack:
            for n in range(8):
                await stack.ask(say_job(1, distinct(1, n)))
            other = await stack.ask(say_job(2, distinct(2, 0)))
    assert fake.stats.by_user["player-1"] == 4
    # Over budget the reply is scripted, and the log line says so and why.
    marked = [e for e in logs if e["event"] == "npc_reply" and e.get("fallback") == "player_budget"]
    assert len(marked) == stack.reasons["player_budget"] and all(e["source"] == "scripted" for e in marked)
    assert other.text  # another player still has their own budget
    assert stack.reasons.get("player_budget", 0) >= 8 - 4
    if not failing:
        assert stack.sources["llm"] == 5
        assert stack.reasons["player_budget"] == 4


async def test_the_global_budget_is_never_exceeded_with_many_calls_in_flight(
    fake: FakeOpenAI, content: Content
) -> None:
    fake.behaviour.latency = 0.05  # many calls overlap: reservations must hold the line
    budget = 5.0  # a call reserves ~0.8 (worst case) and costs ~0.2
    with trio.fail_after(20):
        async with npc_stack(
            fake, content, ai_daily_budget=budget, ai_price_in=PRICE_IN, ai_price_out=PRICE_OUT, ai_queue=1000
        ) as stack:
            stack.submit(*(say_job(p, distinct(p, n)) for n in range(3) for p in range(1, 41)))
            await stack.until_replies(120)
            spent = stack.provider.governor.spent
    upstream_cost = fake.stats.cost(PRICE_IN, PRICE_OUT)
    assert 0 < upstream_cost <= budget
    # What we charged is what the upstream billed (to float rounding).
    assert spent == pytest.approx(upstream_cost)
    assert stack.reasons["budget"] == 120 - fake.stats.calls
    assert fake.stats.calls >= 5  # the bound is not so loose that nothing gets through


async def test_budgets_survive_a_restart(fake: FakeOpenAI, content: Content, tmp_path: Path) -> None:
    day = "2031-05-06"
    with trio.fail_after(20):
        async with open_sqlite(f"sqlite:///{tmp_path}/b.db") as store:
            await store.migrate()
            async with npc_stack(fake, content, store=store, ai_player_daily_calls=3, today=lambda: day) as stack:
                for n in range(3):
                    await stack.ask(say_job(1, distinct(1, n)))
            # The stack was cancelled like a shutdown: its usage is in the store.
            calls, cost = await store.ai_usage(day)
            assert calls == {1: 3}
            assert cost == pytest.approx(fake.stats.cost(0.00015, 0.0006))
            async with npc_stack(fake, content, store=store, ai_player_daily_calls=3, today=lambda: day) as again:
                await again.ask(say_job(1, distinct(1, 9)))
                assert again.reasons == {"player_budget": 1}
                await again.ask(say_job(2, distinct(2, 9)))
            # A new day starts fresh.
            async with npc_stack(
                fake, content, store=store, ai_player_daily_calls=3, today=lambda: "2031-05-07"
            ) as nxt:
                await nxt.ask(say_job(1, distinct(1, 10)))
                assert nxt.sources == {"llm": 1}
    assert fake.stats.calls == 5


# ----------------------------------------------------------------- cache and single-flight


async def test_identical_concurrent_requests_make_one_upstream_call(fake: FakeOpenAI, content: Content) -> None:
    fake.behaviour.latency = 0.3  # long enough for all 25 to be waiting at once
    greetings = ["Hello!", "hi mom", "Hey", "HELLO", "good morning, Lan", "heyyy mom!"]
    with trio.fail_after(10):
        async with npc_stack(fake, content, ai_workers=32) as stack:
            stack.submit(*(say_job(p, greetings[p % len(greetings)]) for p in range(1, 26)))
            replies = await stack.until_replies(25)
            assert fake.stats.calls == 1
            assert len({r.text for r, _ in replies}) == 1
            assert stack.sources == {"llm": 1, "shared": 24}
            # Later, the same small talk comes from the cache.
            cached = await stack.ask(say_job(77, "hello"))
            assert cached.text == replies[0][0].text and stack.sources["cache"] == 1
            # A different kind of NPC is a different reply.
            await stack.ask(say_job(78, "hello", persona="boss", role="boss"))
            # Private lines are not shared unless byte-identical upstream.
            stack.submit(say_job(80, "My exam went badly"), say_job(81, "My exam went badly"))
            await stack.until_replies(29)
    assert fake.stats.calls == 3
    assert stack.provider.statistics().flights.shared == 25


async def test_small_talk_prompts_carry_nothing_private(fake: FakeOpenAI, content: Content) -> None:
    turns = (("player", "my secret plan"), ("npc", "I will keep it"))
    with trio.fail_after(10):
        async with npc_stack(fake, content) as stack:
            await stack.ask(say_job(5, "Hey mom!", summary='"I broke up with Minh"', turns=turns))
            await stack.ask(say_job(5, "Where did you hide the key?", summary='"I broke up with Minh"', turns=turns))
    small_talk, private = (str(messages) for messages in fake.stats.requests)
    # Names, summary and history never leave in a cacheable request...
    for secret in ("Ana", "Lan", "Minh", "secret plan", "Hey mom"):
        assert secret not in small_talk
    assert "Hi!" in small_talk and "mother" in small_talk
    # ...but a private line carries its whole context.
    for context in ("Ana Tran", "Lan Tran", "Minh", "my secret plan", "I will keep it", "hide the key"):
        assert context in private


# ----------------------------------------------------------------- failures


@pytest.mark.parametrize("failure", ["500", "close", "hang"])
async def test_with_the_upstream_failing_every_say_gets_a_reply_in_time_and_the_breaker_stops_calls(
    fake: FakeOpenAI, content: Content, failure: str
) -> None:
    fake.behaviour.fail_rate = 1.0
    fake.behaviour.failure = failure
    timeout = 2.0
    with trio.fail_after(20):
        async with npc_stack(
            fake, content, ai_timeout=timeout, ai_breaker_failures=3, ai_breaker_cooldown=600
        ) as stack:
            first = [say_job(p, distinct(p, 0)) for p in range(1, 21)]
            started = trio.current_time()
            stack.submit(*first)
            replies = await stack.until_replies(20)
            late = max(at - started for _, at in replies)
            assert late <= timeout + 0.5, f"a reply came {late:.2f} s after the say"
            assert stack.sources == {"scripted": 20}
            # The flights end in tasks of their own, and tell the breaker so;
            # a worker may hand back the last replies (jobs whose deadline
            # passed in the queue) before those tasks have run.
            await trio.testing.wait_all_tasks_blocked()
            assert stack.provider.breaker.state == "open", stack.reasons
            calls = fake.stats.calls
            refused = stack.reasons.get("breaker_open", 0)
            # Bounded damage: the 16 jobs the workers took first, and at most
            # failures - 1 more started before the breaker opened, each with
            # at most 3 attempts.
            assert calls <= (16 + 3 - 1) * 3, fake.stats.outcomes
            # Once open, no call goes upstream and replies come at once.
            started = trio.current_time()
            stack.submit(*(say_job(p, distinct(p, 1)) for p in range(1, 21)))
            replies = await stack.until_replies(40)
            late = max(at - started for _, at in replies[20:])
            assert late < timeout / 2, f"an open breaker still made a reply wait {late:.2f} s"
            assert fake.stats.calls == calls
            assert stack.reasons["breaker_open"] == refused + 20
            # Hung calls were abandoned, not left open upstream.
            await fake.until(lambda s: s.in_flight == 0)


async def test_retry_after_is_honoured(fake: FakeOpenAI, content: Content) -> None:
    fake.behaviour.script = ["429"]
    fake.behaviour.retry_after = 1
    with trio.fail_after(10):
        async with npc_stack(fake, content, ai_timeout=5) as stack:
            reply = await stack.ask(say_job(1, distinct(1, 0)))
    first, second = fake.stats.arrivals
    assert second - first >= 1.0
    assert stack.sources == {"llm": 1} and reply.text.startswith("#2 ")


async def test_a_retry_after_beyond_the_deadline_answers_at_once_and_holds_every_call(
    fake: FakeOpenAI, content: Content
) -> None:
    fake.behaviour.script = ["429"]
    fake.behaviour.retry_after = 30
    with trio.fail_after(10):
        async with npc_stack(fake, content, ai_timeout=3) as stack:
            started = trio.current_time()
            await stack.ask(say_job(1, distinct(1, 0)))
            assert trio.current_time() - started < 0.5  # no pointless wait for a retry that cannot happen
            await stack.ask(say_job(2, distinct(2, 0)))
    assert fake.stats.calls == 1
    assert stack.reasons == {"rate_limited": 2}


async def test_the_breaker_closes_after_a_successful_probe(fake: FakeOpenAI, content: Content) -> None:
    fake.behaviour.fail_rate = 1.0
    with trio.fail_after(10):
        async with npc_stack(fake, content, ai_breaker_failures=2, ai_breaker_cooldown=0.3) as stack:
            for p in (1, 2):
                await stack.ask(say_job(p, distinct(p, 0)))
            assert stack.provider.breaker.state == "open"
            fake.behaviour.fail_rate = 0.0
            opened = stack.provider.breaker.opened_at
            await trio.sleep_until(opened + 0.3)  # the cooldown under test, not a race
            reply = await stack.ask(say_job(3, distinct(3, 0)))
            assert reply.text.startswith("#")
            assert stack.provider.breaker.state == "closed"


# ----------------------------------------------------------------- cancellation


async def test_a_player_who_leaves_leaves_no_ai_work_behind(fake: FakeOpenAI, content: Content) -> None:
    fake.behaviour.fail_rate = 1.0
    fake.behaviour.failure = "hang"
    with trio.fail_after(5):
        async with npc_stack(fake, content, ai_workers=1, ai_queue=4) as stack:
            stack.submit(say_job(1, distinct(1, 0)), say_job(2, distinct(2, 0)))
            await fake.until(lambda s: s.in_flight == 1)
            stack.service.cancel(2)  # queued: will be answered without a call
            stack.service.cancel(1)  # running: its call is dropped now
            await stack.until_replies(2)
            await fake.until(lambda s: s.in_flight == 0)
            assert stack.reasons == {"disconnected": 2}
            st = stack.service.statistics()
            assert (st.busy_workers, st.queued) == (0, 0)
            assert stack.provider.statistics().flights.in_flight == 0
    assert fake.stats.calls == 1


async def test_a_shutdown_leaves_no_ai_task_and_saves_the_usage(
    fake: FakeOpenAI, content: Content, tmp_path: Path
) -> None:
    fake.behaviour.script = ["ok", "ok", "hang", "hang"]
    with trio.fail_after(10):
        async with open_sqlite(f"sqlite:///{tmp_path}/s.db") as store:
            await store.migrate()
            async with npc_stack(fake, content, store=store) as stack:
                await stack.ask(say_job(1, distinct(1, 0)))
                await stack.ask(say_job(1, distinct(1, 1)))
                stack.submit(say_job(2, distinct(2, 0)), say_job(3, distinct(3, 0)))
                await fake.until(lambda s: s.in_flight == 2)
                stopping = trio.current_time()
            # Leaving the block cancelled the service: it returned promptly...
            assert trio.current_time() - stopping < 1.0
            await fake.until(lambda s: s.in_flight == 0)
            calls, cost = await store.ai_usage(utc_day())
    # ...and every call made is on record (hung ones at their worst case).
    assert calls == {1: 2, 2: 1, 3: 1}
    assert cost > fake.stats.cost(0.00015, 0.0006) > 0
