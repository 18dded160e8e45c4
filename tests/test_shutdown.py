"""Graceful shutdown under load, end to end: a real ``baolife serve`` process
with 200 players on real WebSockets gets SIGTERM. Every player gets ``bye``
(shutdown) and close 1001, the process exits 0 within the systemd unit's
TimeoutStopSec, and after a restart every player logs in and finds the state
they last saw."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import Client
from serverproc import serve_process, server_env
from trio_websocket import ConnectionClosed

PLAYERS = 200
ROOT = Path(__file__).resolve().parent.parent
COMPARED = ("name", "life", "alive", "age_days", "money", "stats", "job", "education")


def timeout_stop_seconds() -> float:
    """TimeoutStopSec of systemd/baolife.service, in seconds."""
    text = (ROOT / "systemd" / "baolife.service").read_text()
    match = re.search(r"^TimeoutStopSec=(\d+)s?$", text, re.MULTILINE)
    assert match, "systemd/baolife.service has no TimeoutStopSec=Ns"
    return float(match.group(1))


class Progress:
    """Lets the test wait for a condition on the players without polling."""

    def __init__(self) -> None:
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, condition: Callable[[], bool], what: str, budget: float) -> None:
        with trio.move_on_after(budget):
            while not condition():
                await self._changed.wait()
            return
        pytest.fail(f"timed out after {budget}s waiting for {what}")


class Player:
    """One player's view: the snapshot from welcome with every state op applied."""

    def __init__(self, index: int, progress: Progress) -> None:
        self.progress = progress
        self.name = f"Player {index}"
        self.token = ""
        self.view: dict[str, Any] = {}
        self.states_seen = 0
        self.last_ops: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.saved: dict[str, Any] = {}
        self.welcomed: dict[str, Any] = {}

    def apply(self, ops: list[dict[str, Any]]) -> None:
        self.progress.changed()
        for op in ops:
            if op["op"] == "welcome":
                self.view = op["snapshot"]
                self.welcomed = self.compared()
            elif op["op"] == "state":
                self.states_seen += 1
                for key, value in op.items():
                    if key == "stats":
                        self.view["stats"].update(value)
                    elif key != "op":
                        self.view[key] = value

    def compared(self) -> dict[str, Any]:
        return {key: self.view.get(key) for key in COMPARED}


async def play_until_closed(port: int, player: Player, joined: list[int], login: bool) -> None:
    """Log in (register the first time), then read every frame until the
    server closes; records the last frame's ops and the close code."""
    async with Client.connect(port) as client:
        if login:
            await client.send("login", token=player.token)
        else:
            player.token, welcome = await client.register(player.name)
            joined.append(1)
            player.apply([welcome, *client.ops])  # the rest of the welcome frame
            client.ops.clear()
        while True:
            try:
                frame = await client.frame()
            except ConnectionClosed as closed:
                assert closed.reason is not None
                player.close_code = closed.reason.code
                return
            if any(op["op"] == "welcome" for op in frame["ops"]):
                joined.append(1)
            player.apply(frame["ops"])
            player.last_ops = frame["ops"]


async def run_round(env: dict[str, str], tmp_path: Path, players: list[Player], login: bool) -> tuple[float, dict]:
    """Start the server, connect every player, SIGTERM it; returns the seconds
    from SIGTERM to exit and the server's shutdown_complete line."""
    joined: list[int] = []
    async with serve_process(env, tmp_path) as server, trio.open_nursery() as nursery:
        for player in players:
            player.close_code = None
            nursery.start_soon(play_until_closed, server.ws_port, player, joined, login)
        progress = players[0].progress
        await progress.until(lambda: len(joined) == len(players), "every player to log in", 60)
        if login:
            # What a returning player finds must be what they last saw.
            for player in players:
                assert player.welcomed == player.saved, player.name
        # Let game days pass, so every player has unsaved changes.
        seen = {id(p): p.states_seen for p in players}
        await progress.until(lambda: all(p.states_seen >= seen[id(p)] + 2 for p in players), "game days to pass", 30)
        sent = trio.current_time()
        server.terminate()
        with trio.fail_after(timeout_stop_seconds()):
            status = await server.exited()
        elapsed = trio.current_time() - sent
        assert status == 0, server.tail()
        done = await server.wait_for("shutdown_complete")
    return elapsed, done


@pytest.mark.slow
async def test_sigterm_with_200_players_saves_everyone_and_they_come_back(tmp_path: Path) -> None:
    env = server_env(
        tmp_path / "baolife.db", conn_per_ip=1000, register_per_ip_hour=1000, save_interval=30, summary_interval=3600
    )
    progress = Progress()
    players = [Player(i, progress) for i in range(PLAYERS)]
    with trio.fail_after(150):
        elapsed, done = await run_round(env, tmp_path, players, login=False)
        for player in players:
            assert player.close_code == 1001, player.name
            assert player.last_ops[-1] == {"op": "bye", "reason": "shutdown"}, player.last_ops
            player.saved = player.compared()
        # save_interval is 30 s: nothing was saved by the saver's timer, all by the drain.
        assert done["unsaved"] == 0 and done["connections_cut"] == 0, done
        print(f"\nshutdown with {PLAYERS} players: {elapsed:.2f}s from SIGTERM to exit 0 (server: {done['seconds']}s)")

        elapsed2, _ = await run_round(env, tmp_path, players, login=True)
        assert all(p.close_code == 1001 for p in players)
        print(f"second shutdown: {elapsed2:.2f}s")
