"""PROTOCOL.md: ``bye`` says the server is about to close the connection, so
it is the last op of the last frame, over real loopback sockets.

A ``logout`` (or an operator's kick) is applied in step 1 of a tick; the
player's day still runs in step 2 of that same tick and adds a ``state`` op
to the same frame. With one game day per tick (the test settings) every
tick is every player's day boundary, so the tick of the bye always has such
an op: it must come before the bye, not after it. The ops of that tick are
all delivered (a client that resumes goes on from that frame's seq and must
not miss a change), the bye last, then the documented close code.
"""

from __future__ import annotations

from typing import Any

import attrs
import httpx
import pytest
import trio

from baolife import protocol as wire
from baolife.admin.tokens import token_line
from baolife.config import Settings
from baolife.content.schema import Content
from tests.helpers import Client, running_app

OPERATOR = "bla_bye-last-operator-token-0123456789abcdef"  # noqa: S105


@pytest.fixture
def lasting(content: Content) -> Content:
    """The game's content where nobody dies of chance: the player lives (and
    gets a ``state`` op) every tick of the test."""
    world = content.world
    return attrs.evolve(content, world=attrs.evolve(world, hazard=attrs.evolve(world.hazard, base=0.0, infant=0.0)))


def _last_frame_ends_with_bye(client: Client, reason: str) -> list[dict[str, Any]]:
    """The last frame's ops, checked: one bye, the last op, of ``reason``."""
    ops = client.frames[-1]["ops"]
    byes = [op for frame in client.frames for op in frame["ops"] if op["op"] == "bye"]
    assert len(byes) == 1 and ops[-1] is byes[0] and ops[-1]["reason"] == reason, [op["op"] for op in ops]
    return ops


async def test_a_logout_s_bye_comes_after_the_state_of_its_tick(settings: Settings, lasting: Content) -> None:
    with trio.fail_after(20):
        async with running_app(settings, content=lasting) as app, Client.connect(app.ws_port) as client:
            await client.register("Lou Logout")
            await client.op("state")  # the days are running: every tick has a state op
            await client.send("logout")
            assert await client.closed() == wire.CloseCode.LOGOUT == 1000
            ops = _last_frame_ends_with_bye(client, "logout")
            # The day the logout's tick ran is in that frame, before the bye.
            assert "state" in [op["op"] for op in ops[:-1]], ops


async def test_a_kick_s_bye_comes_after_the_state_of_its_tick(settings: Settings, lasting: Content) -> None:
    settings = settings.replace(admin_tokens=token_line("ops", "operator", OPERATOR), admin_rate=100.0)
    with trio.fail_after(20):
        async with running_app(settings, content=lasting) as app, Client.connect(app.ws_port) as client:
            _, welcome = await client.register("Kim Kick")
            await client.op("state")
            async with httpx.AsyncClient(timeout=10) as http:
                got = await http.post(
                    f"http://127.0.0.1:{app.http_port}/admin/api/players/{welcome['player']}/kick",
                    json={"reason": "enough"},
                    headers={"authorization": f"Bearer {OPERATOR}"},
                )
            assert got.status_code == 200, got.text
            assert await client.closed() == wire.CloseCode.KICKED == 4002
            ops = _last_frame_ends_with_bye(client, "kicked")
            assert ops[-1]["message"] == "enough"
            assert "state" in [op["op"] for op in ops[:-1]], ops
