"""NPC conversations end to end: a real App with the LLM provider pointed at
the fake OpenAI server, players over real WebSockets."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from helpers import Client, running_app

from baolife.ai.fake import FakeOpenAI
from baolife.app import App
from baolife.config import Settings


def with_ai(settings: Settings, fake: FakeOpenAI, **changes: Any) -> Settings:
    return settings.replace(ai_api_key="test-key", ai_base_url=fake.base_url, **changes)


async def player(client: Client, name: str = "Ana Tran") -> tuple[str, int]:
    token, welcome = await client.register(name)
    npcs = welcome["snapshot"]["npcs"]
    assert npcs, "a newborn has family to talk to"
    return token, npcs[0]["id"]


async def test_the_llm_answers_a_say_and_a_second_say_meanwhile_is_busy(settings: Settings, fake: FakeOpenAI) -> None:
    fake.behaviour.latency = 0.5
    with trio.fail_after(15):
        async with running_app(with_ai(settings, fake)) as app, Client.connect(app.ws_port) as c:
            assert app.npc.provider.name == "openai"
            _, npc = await player(c)
            first = await c.send("say", npc=npc, text="I passed my driving test today")
            second = await c.send("say", npc=npc, text="Are you there?")
            assert await c.op("ack", ref=first)
            busy = await c.op("error", ref=second)
            assert busy["code"] == "busy"
            reply = await c.op("npc_say", ref=first)
            assert reply["npc"] == npc and reply["text"].startswith("#1 (I passed my driving test")
            metrics = app.metrics.render().decode()
    assert fake.stats.calls == 1
    assert 'baolife_ai_calls_total{outcome="ok"} 1.0' in metrics
    assert 'baolife_npc_replies_total{outcome="llm"} 1.0' in metrics
    assert "baolife_ai_breaker_open 0.0" in metrics
    assert 'baolife_npc_fallback_reasons_total{reason="budget"} 0.0' in metrics
    assert 'baolife_ai_tokens_total{direction="in"}' in metrics
    assert "baolife_ai_cache_capacity 10000.0" in metrics


async def test_a_full_job_channel_answers_busy_at_once(settings: Settings, fake: FakeOpenAI) -> None:
    fake.behaviour.fail_rate, fake.behaviour.failure = 1.0, "hang"
    with trio.fail_after(15):
        async with (
            running_app(with_ai(settings, fake, ai_workers=1, ai_queue=1)) as app,
            Client.connect(app.ws_port) as a,
            Client.connect(app.ws_port) as b,
            Client.connect(app.ws_port) as c,
        ):
            npcs = [await player(x, f"P{i}") for i, x in enumerate((a, b, c))]
            assert await a.request("say", npc=npcs[0][1], text="one") == {"op": "ack", "ref": 2}
            await fake.until(lambda s: s.in_flight == 1)  # the worker is on a's job
            assert (await b.request("say", npc=npcs[1][1], text="two"))["op"] == "ack"  # queued
            refused = await c.request("say", npc=npcs[2][1], text="three")
            assert refused["op"] == "error" and refused["code"] == "busy"


async def test_a_player_who_disconnects_leaves_no_ai_work_behind(settings: Settings, fake: FakeOpenAI) -> None:
    fake.behaviour.fail_rate, fake.behaviour.failure = 1.0, "hang"
    with trio.fail_after(10):
        async with running_app(with_ai(settings, fake)) as app:  # ai_timeout 15 s: far off
            async with Client.connect(app.ws_port) as c:
                _, npc = await player(c)
                await c.request("say", npc=npc, text="Where is my passport?")
                await fake.until(lambda s: s.in_flight == 1)
            left = trio.current_time()
            await fake.until(lambda s: s.in_flight == 0)
            assert trio.current_time() - left < 2.0
            await trio.testing.wait_all_tasks_blocked()
            st = app.npc.statistics()
            assert (st.busy_workers, st.queued, st.reasons) == (0, 0, {"disconnected": 1})


async def test_a_shutdown_leaves_no_ai_task_behind(settings: Settings, fake: FakeOpenAI) -> None:
    fake.behaviour.fail_rate, fake.behaviour.failure = 1.0, "hang"
    app: App
    with trio.fail_after(10):
        async with running_app(with_ai(settings, fake)) as app, Client.connect(app.ws_port) as c:
            _, npc = await player(c)
            await c.request("say", npc=npc, text="Tell me a story")
            await fake.until(lambda s: s.in_flight == 1)
            stopping = trio.current_time()
        # running_app has returned: App.run's nursery, AI workers included, is done.
        assert trio.current_time() - stopping < 5.0
        await fake.until(lambda s: s.in_flight == 0)
    assert app.exit_code == 0


async def test_a_restart_does_not_reset_the_budgets(settings: Settings, fake: FakeOpenAI) -> None:
    s = with_ai(settings, fake, ai_player_daily_calls=1)
    with trio.fail_after(15):
        async with running_app(s) as app, Client.connect(app.ws_port) as c:
            token, npc = await player(c)
            ref = await c.send("say", npc=npc, text="I started university")
            assert (await c.op("npc_say", ref=ref))["text"].startswith("#1")
        async with running_app(s) as app, Client.connect(app.ws_port) as c:
            await c.request("login", token=token)
            ref = await c.send("say", npc=npc, text="I failed my first exam")
            reply = await c.op("npc_say", ref=ref)
            assert not reply["text"].startswith("#")  # in character, from the script
            assert app.npc.statistics().reasons == {"player_budget": 1}
    assert fake.stats.calls == 1


async def test_without_a_key_the_offline_provider_answers(settings: Settings) -> None:
    with trio.fail_after(10):
        async with running_app(settings) as app, Client.connect(app.ws_port) as c:
            _, npc = await player(c)
            ref = await c.send("say", npc=npc, text="hello")
            assert (await c.op("npc_say", ref=ref))["text"]
            assert app.npc.statistics().sources == {"offline": 1}
