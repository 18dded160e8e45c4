"""Test helpers of the AI tests: say jobs, and the NPC stack (service + LLM
provider) wired to the fake OpenAI server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from baolife.ai.fake import FakeOpenAI
from baolife.ai.llm import LlmProvider
from baolife.ai.offline import ScriptedProvider
from baolife.ai.service import NpcService
from baolife.config import Settings
from baolife.content.schema import Content
from baolife.db.store import Store
from baolife.tick.engine import SayJob
from baolife.tick.loop import NpcReply


def say_job(
    player: int = 1,
    text: str = "Tell me about the garden you planted",
    *,
    persona: str = "warm_parent",
    role: str = "mother",
    closeness: int = 70,
    turns: tuple[tuple[str, str], ...] = (),
    summary: str = "",
    ref: Any = None,
    player_name: str = "Ana Tran",
    npc_name: str = "Lan Tran",
    player_years: int = 30,
    player_stage: str = "adult",
    npc_years: int = 58,
) -> SayJob:
    return SayJob(
        player=player,
        life=1,
        npc=1,
        ref=ref if ref is not None else f"r{player}",
        text=text,
        player_name=player_name,
        npc_name=npc_name,
        role=role,
        persona=persona,
        closeness=closeness,
        summary=summary,
        turns=turns,
        player_years=player_years,
        player_stage=player_stage,
        npc_years=npc_years,
    )


class Stack:
    """An NpcService with an LlmProvider talking to the fake; collects the
    delivered replies with the (trio) time they arrived."""

    def __init__(self, service: NpcService, provider: LlmProvider, fake: FakeOpenAI) -> None:
        self.service = service
        self.provider = provider
        self.fake = fake
        self.replies: list[tuple[NpcReply, float]] = []
        self._changed = trio.Event()

    def deliver(self, reply: NpcReply) -> None:
        self.replies.append((reply, trio.current_time()))
        self._changed.set()
        self._changed = trio.Event()

    def submit(self, *jobs: SayJob) -> None:
        for job in jobs:
            assert self.service.submit(job), "the job channel refused a job"

    async def until_replies(self, count: int) -> list[tuple[NpcReply, float]]:
        while len(self.replies) < count:
            await self._changed.wait()
        return self.replies

    async def ask(self, job: SayJob) -> NpcReply:
        """Submit one job and wait for its reply."""
        before = len(self.replies)
        self.submit(job)
        await self.until_replies(before + 1)
        return self.replies[before][0]

    @property
    def sources(self) -> dict[str, int]:
        return self.service.statistics().sources

    @property
    def reasons(self) -> dict[str, int]:
        return self.service.statistics().reasons


@asynccontextmanager
async def npc_stack(
    fake: FakeOpenAI,
    content: Content,
    *,
    store: Store | None = None,
    backoff: float = 0.02,
    today: Callable[[], str] | None = None,
    **settings: Any,
) -> AsyncIterator[Stack]:
    """Run an NPC stack for the body of the ``async with``; cancelled after."""
    s = Settings.defaults(ai_api_key="test-key", ai_base_url=fake.base_url, save_interval=0.1, **settings)
    provider = LlmProvider.from_settings(s, content, store)
    # Short waits keep the tests fast; the policy under test is the same.
    provider.backoff_base, provider.backoff_max = backoff, backoff * 8
    if today is not None:
        provider.governor.today = today
        provider.governor.day = today()
    service = NpcService(
        provider,
        ScriptedProvider(content),
        workers=s.ai_workers,
        queue=s.ai_queue,
        timeout=s.ai_timeout,
        deliver=lambda reply: stack.deliver(reply),
    )
    stack = Stack(service, provider, fake)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        try:
            yield stack
        finally:
            nursery.cancel_scope.cancel()
