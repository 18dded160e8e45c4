"""Database outages, made by a TCP proxy that cuts and restores the path to
MariaDB: the store fails fast and recovers; the server keeps its players
playing, refuses logins that need a load with ``busy``, reports the outage on
/readyz, and saves every change once the path is back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import trio
from helpers import Client, running_app

from baolife.app import App
from baolife.config import Settings
from baolife.db.mysql import open_mysql
from baolife.db.store import SaveRow, StoreUnavailable, hash_token
from baolife.model import dump_player
from tests.db.mysql_admin import MysqlAdmin
from tests.db.tcp_proxy import proxied

pytestmark = pytest.mark.mysql

FAST = "?connect_timeout=1&timeout=1.5&save_timeout=1.5"


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll ``check`` until true; the seconds it took."""
    started = trio.current_time()
    with trio.move_on_after(within):
        while True:  # polling: readiness and save counters have no event to wait on
            if await check():
                return trio.current_time() - started
            await trio.sleep(0.05)
    raise AssertionError(f"not within {within} s: {what}")


@pytest.mark.parametrize("mode", ["reset", "blackhole"])
async def test_store_calls_fail_fast_during_an_outage_and_work_after_it(mysql_url: str, mode: str) -> None:
    with trio.fail_after(60):
        async with proxied(mysql_url) as proxy, open_mysql(proxy.url(mysql_url) + FAST, pool_size=3) as store:
            await store.migrate()
            secret = hash_token(f"outage-{mode}")
            pid = await store.create_account("Bao", secret)
            epoch = (await store.claim(pid)).epoch
            proxy.cut(mode)
            for call in (store.ping, lambda: store.find_account(secret), lambda: store.claim(pid)):
                started = trio.current_time()
                with pytest.raises(StoreUnavailable):
                    await call()
                # reset: refused at once; blackhole: the call's own deadline
                assert trio.current_time() - started < (0.5 if mode == "reset" else 2.5)
            with pytest.raises(StoreUnavailable):
                await store.save([SaveRow(pid, b"during", 1, epoch)])
            stats = store.statistics()
            assert (stats.pool_in_use, stats.pool_waiting) == (0, 0)
            assert stats.pool_open <= 3
            proxy.restore()
            await store.ping()
            assert await store.find_account(secret) == pid
            assert await store.save([SaveRow(pid, b"after", 1, epoch)]) == set()
            assert (await store.claim(pid)).state == b"after"


async def readyz(app: App) -> tuple[int, list[str]]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"http://127.0.0.1:{app.http_port}/readyz")
    return response.status_code, response.json()["problems"]


async def frames_over(client: Client, app: App, seconds: float) -> tuple[int, int]:
    """Read ``client``'s frames for ``seconds``: (ticks the server ran, frames
    of those ticks the client got)."""
    first = app.loop.tick
    got = 0
    with trio.move_on_after(seconds):
        while True:
            frame = await client.frame()
            got += frame["tick"] > first
    return app.loop.tick - first, got


@pytest.mark.parametrize("mode", ["reset", "blackhole"])
async def test_players_keep_playing_through_a_database_outage(mysql_url: str, settings: Settings, mode: str) -> None:
    # Players go offline by closing their connections (the server detaches them).
    with trio.fail_after(120):
        async with proxied(mysql_url) as proxy:
            s = settings.replace(db_url=proxy.url(mysql_url) + FAST)
            async with running_app(s) as app:
                async with Client.connect(app.ws_port) as c:
                    token_c, _ = await c.register("Chi")
                async with AsyncExitStack() as online:
                    a = await online.enter_async_context(Client.connect(app.ws_port))
                    b = await online.enter_async_context(Client.connect(app.ws_port))
                    players = [(await a.register("Anh"))[1]["player"], (await b.register("Bình 🌸"))[1]["player"]]

                    async def saved_and_ready() -> bool:
                        return app.saver.rows >= 3 and (await readyz(app))[0] == 200

                    await eventually(saved_and_ready, 10, "first saves and readiness")
                    ticks_before, _ = await frames_over(a, app, 1.0)

                    proxy.cut(mode)
                    cut_at = trio.current_time()

                    async def outage_reported() -> bool:
                        status, problems = await readyz(app)
                        return status == 503 and "saves failing" in problems

                    await eventually(outage_reported, 5, "/readyz reporting the outage")

                    # A login that needs a load is told busy within a few seconds.
                    async with Client.connect(app.ws_port) as c:
                        started = trio.current_time()
                        answer = await c.request("login", token=token_c)
                        assert (answer["op"], answer["code"]) == ("error", "busy")
                        assert trio.current_time() - started < 4.0

                    # Connected players play on at full tick rate, one frame per tick.
                    ticks_during, frames_during = await frames_over(a, app, 1.0)
                    assert ticks_during >= 0.8 * ticks_before
                    assert frames_during >= ticks_during - 2
                    assert (await b.request("ping"))["op"] == "pong"
                    assert (await b.request("act", action="study"))["op"] in ("ack", "error")
                    await eventually(lambda: _true(trio.current_time() - cut_at > 3.5), 5, "a longer outage")
                    failures = app.saver.failures
                    outage = trio.current_time() - cut_at
                    # Saves were retried by a probe once per retry interval (the
                    # save interval here, being under a second), not in a busy loop.
                    assert 2 <= failures <= outage / app.saver.retry_every + 1

                    proxy.restore()
                    restored_at = trio.current_time()
                    await eventually(
                        lambda: _true(not app.saver.failing and (app.saver.last_ok or 0) > restored_at),
                        15,
                        "saves working again",
                    )
                # Both players went offline: their last changes must reach the database.
                # (Dirty count alone can touch 0 between two game days while the
                # server has yet to see the clients leave: wait for both.)

                def offline_and_saved() -> bool:
                    released = all((e := app.directory.get(pid)) is not None and not e.holds for pid in players)
                    return released and app.directory.dirty_count == 0

                await eventually(lambda: _true(offline_and_saved()), 15, "both offline, every change saved")
                async with MysqlAdmin.open(mysql_url) as admin:
                    for pid in players:
                        entry = app.directory.get(pid)
                        assert entry is not None and not entry.holds
                        assert await admin.player(pid) == (dump_player(entry.player), entry.epoch)
                        assert entry.player.age_days > 100  # it did play through the outage

                async with Client.connect(app.ws_port) as c:
                    assert (await c.request("login", token=token_c))["op"] == "welcome"
                await eventually(lambda: _ready(app), 15, "/readyz ready again")
                metrics = await _metrics(app)
                assert "baolife_store_pool_size 8.0" in metrics
                assert "baolife_store_pool_in_use " in metrics and "baolife_store_pool_open " in metrics
                timeouts = [line for line in metrics.splitlines() if line.startswith("baolife_store_timeouts_total ")]
                assert timeouts and float(timeouts[0].split()[1]) >= (1 if mode == "blackhole" else 0)


async def _true(value: bool) -> bool:
    return value


async def _ready(app: App) -> bool:
    return (await readyz(app))[0] == 200


async def _metrics(app: App) -> Any:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"http://127.0.0.1:{app.http_port}/metrics")).text
