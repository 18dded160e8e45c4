"""After a restart every life is where it was; a clean shutdown loses nothing.

The SIGTERM test runs the real ``baolife serve`` as a child process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from baolife.config import Settings
from tests.faults import record
from tests.helpers import Client, running_app, same_life
from tests.serverproc import serve_process, server_env


async def _play(c: Client, days: int) -> None:
    """Play for a few game days: act, talk, answer whatever asks."""
    start = c.view["age_days"]
    mother = c.view["npcs"][0]["id"]
    await c.send("act", action="play")
    await c.send("say", npc=mother, text="Hi!")
    while c.view["age_days"] < start + days:
        op = await c.op()
        if op["op"] == "prompt":
            await c.send("answer", prompt=op["id"], choice=op["choices"][0]["key"])


async def test_lives_survive_a_restart(settings: Settings) -> None:
    # A long save interval: what survives was written by the shutdown flush.
    s = settings.replace(save_interval=600)
    players: list[tuple[str, dict[str, Any]]] = []
    with trio.fail_after(60):
        async with running_app(s) as app:
            async with Client.connect(app.ws_port) as a, Client.connect(app.ws_port) as b:
                tokens = {}
                for client in (a, b):
                    tokens[client], _ = await client.register()
                    await _play(client, 60)
                app.request_shutdown()
                for client in (a, b):
                    assert (await client.op("bye"))["reason"] == "shutdown"
                    assert await client.closed() == 1001
                    players.append((tokens[client], client.view))
        async with running_app(s) as app:
            for token, view in players:
                async with Client.connect(app.ws_port) as c:
                    welcome = await c.request("login", token=token)
                    same_life(view, welcome["snapshot"])


async def test_sigterm_drains_saves_everyone_and_exits_0(tmp_path: Path) -> None:
    # A long save interval: what survives was written by the shutdown flush.
    env = server_env(tmp_path / "life.db", tick_hz=50, day_ticks=1, save_interval=600)
    players: list[tuple[str, dict[str, Any]]] = []
    with trio.fail_after(90):
        async with serve_process(env, tmp_path) as server:
            async with (
                Client.connect(server.ws_port) as a,
                Client.connect(server.ws_port) as b,
                Client.connect(server.ws_port) as c,
            ):
                tokens = {}
                for client in (a, b, c):
                    tokens[client], _ = await client.register()
                    await _play(client, 30)
                server.terminate()
                for client in (a, b, c):
                    assert (await client.op("bye"))["reason"] == "shutdown"
                    assert await client.closed() == 1001
                    players.append((tokens[client], client.view))
            assert await server.exited() == 0
            done = await server.wait_for("shutdown_complete")
            assert done["unsaved"] == 0 and done["saved_rows"] >= 3
        async with serve_process(env, tmp_path) as server:
            for token, view in players:
                async with Client.connect(server.ws_port) as c:
                    welcome = await c.request("login", token=token)
                    same_life(view, welcome["snapshot"])
            server.terminate()
            assert await server.exited() == 0


@pytest.mark.faults
async def test_a_new_player_killed_at_once_comes_back_as_the_same_life(tmp_path: Path) -> None:
    # No periodic save within the test: all that survives the kill is what
    # registration itself made durable before answering.
    env = server_env(tmp_path / "life.db", save_interval=600)
    seen: list[tuple[str, dict[str, Any]]] = []
    with trio.fail_after(60):
        async with serve_process(env, tmp_path) as server:
            for _ in range(3):
                async with Client.connect(server.ws_port) as c:
                    token, welcome = await c.register()
                    seen.append((token, welcome["snapshot"]))
            server.proc.kill()
            assert await server.exited() == -9
        # Another seed after the restart: a life rolled again would differ.
        async with serve_process({**env, "BAOLIFE_SEED": "8"}, tmp_path) as server:
            for token, birth in seen:
                async with Client.connect(server.ws_port) as c:
                    snapshot = (await c.request("login", token=token))["snapshot"]
                    rolled_again = snapshot["npcs"] != birth["npcs"] or snapshot["stats"] != birth["stats"]
                    record("kill -9 right after registration", players=1, lives_rolled_again=int(rolled_again))
                    assert snapshot["name"] == birth["name"] and snapshot["life"] == birth["life"]
                    assert snapshot["stats"] == birth["stats"] and snapshot["money"] == birth["money"]
                    # The same family: a re-rolled life gets new people (and, most likely, a new surname).
                    assert [(n["name"], n["role"]) for n in snapshot["npcs"]] == [
                        (n["name"], n["role"]) for n in birth["npcs"]
                    ]
            server.terminate()
            assert await server.exited() == 0
