"""Fixtures of the AI tests: the fake OpenAI server over real HTTP on
127.0.0.1 port 0, stopped with the test's nursery. The NPC stack and job
factories are in npc_stack.py."""

from __future__ import annotations

import pytest
import trio

from baolife.ai.fake import FakeOpenAI


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeOpenAI:
    server = FakeOpenAI()
    await nursery.start(server.run)
    return server
