"""One life, one owner, across real workers on one database (issue 13).

Two real :class:`App` workers share a store (SQLite with the database bus,
and MariaDB): a player who logs in on B while A runs them is stopped on A
(``bye`` ``replaced``, close 4000), saved there, and B loads exactly the life
A's client last saw, within a second. A worker process that is frozen
(SIGSTOP) cannot answer: B takes the player once A's lease runs out, and when
A wakes it stops its players, its stale save is refused and counted, and the
database keeps B's life. Two workers under one id, and workers sharing a
database with a local bus, are told apart at start and in /readyz.
"""

from __future__ import annotations

import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from helpers import Client, closing_transport, metric_samples, running_app, same_life
from serverproc import serve_process, server_env
from trio_websocket import open_websocket_url

from baolife.app import App
from baolife.config import ConfigError, Settings
from baolife.model import dump_player
from tests.db.mysql_admin import MysqlAdmin
from tests.db.tcp_proxy import proxied

BACKENDS = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]


@pytest.fixture(params=BACKENDS)
def shared(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    """Settings of workers sharing one database, with the database bus."""
    if request.param == "sqlite":
        return settings.replace(bus_url="db", lease_timeout=5.0)
    url: str = request.getfixturevalue("mysql_url")
    return settings.replace(db_url=url, lease_timeout=5.0)


async def play_until_handed_over(client: Client) -> tuple[str, int]:
    """Read A's frames until the server says bye and closes: (reason, close code)."""
    bye = await client.op("bye")
    return bye["reason"], await client.closed()


async def hand_over(token: str, frm: Client, to_port: int) -> tuple[dict[str, Any], float, tuple[str, int]]:
    """Log in on ``to_port`` while ``frm`` plays: B's welcome, the seconds
    from B's login to it, and how A's connection ended."""
    async with Client.connect(to_port) as client:
        handed = await _log_in_while(frm, client, token)
        await client.send("logout")
    return handed


async def test_a_login_on_another_worker_hands_the_life_over_with_nothing_lost(shared: Settings) -> None:
    with trio.fail_after(60):
        async with running_app(shared) as a, running_app(shared) as b:
            assert a.worker_id != b.worker_id
            async with Client.connect(a.ws_port) as on_a:
                token, first = await on_a.register("Handed")
                pid = first["player"]
                for _ in range(30):  # 30 game days on A, some of them saved
                    await on_a.frame()
                welcome, seconds, ended = await hand_over(token, on_a, b.ws_port)
            assert welcome["op"] == "welcome" and welcome["player"] == pid
            assert ended == ("replaced", 4000)
            # Every day played on A, to the last one its client saw, is in what B loaded.
            assert on_a.view["age_days"] >= 30
            same_life(on_a.view, welcome["snapshot"])
            # Never both: A let the player go before B took it.
            assert pid not in a.loop.by_player and pid not in a.world.players
            entry_a = a.directory.get(pid)
            assert entry_a is None or entry_a.fenced
            assert a.ownership.handoffs_served == 1 and b.ownership.handoffs_requested == 1
            assert b.ownership.takeovers == 0

            # And back and forth: each worker serves and asks in turn.
            times = [seconds]
            async with AsyncExitStack() as stack:
                current = await stack.enter_async_context(Client.connect(b.ws_port))
                assert (await current.request("login", token=token))["op"] == "welcome"
                for i in range(6):
                    for _ in range(5):
                        await current.frame()
                    target = (a, b)[i % 2]
                    nxt = await stack.enter_async_context(Client.connect(target.ws_port))
                    welcome, seconds, ended = await _log_in_while(current, nxt, token)
                    assert ended == ("replaced", 4000)
                    same_life(current.view, welcome["snapshot"])
                    times.append(seconds)
                    current = nxt
            # The target is 1 s at p99 (scripts/bench_handoff measures it over 200);
            # here, on a shared machine, one of these seven may meet a flush in flight.
            assert sorted(times)[-2] < 1.0 and max(times) < 2.0, times
            assert a.ownership.handoffs_served + b.ownership.handoffs_served == 7
            assert a.ownership.takeovers + b.ownership.takeovers == 0


async def test_a_worker_shutting_down_lets_its_players_go_with_nothing_lost(shared: Settings) -> None:
    with trio.fail_after(60):
        async with running_app(shared) as b:
            async with running_app(shared) as a:
                async with Client.connect(a.ws_port) as on_a:
                    token, first = await on_a.register("Restarted")
                    for _ in range(20):
                        await on_a.frame()
                    a.request_shutdown()  # a rolling restart's SIGTERM
                    assert (await on_a.op("bye"))["reason"] == "shutdown"
                    assert await on_a.closed() == 1001
                # A said it drains before its players went: once B has heard
                # it (or A is gone already), B's logins of A's players wait
                # for A's "left" without asking A (nor reading A's rows).
                gone = a.ownership.worker
                for _ in range(1000):  # polled (10 s at most): B's bus reads every bus_poll
                    live = {w.id for w in await b.ownership.store.live_workers()}
                    if b.ownership.peer_draining(gone) or gone not in live:
                        break
                    await trio.sleep(0.01)
                # The client reconnects at once, elsewhere, while A still drains.
                async with Client.connect(b.ws_port) as on_b:
                    welcome = await on_b.request("resume", token=token, last_seq=on_a.frames[-1]["seq"])
                    assert welcome["op"] == "welcome", welcome
                    same_life(on_a.view, welcome["snapshot"])
            assert a.exit_code == 0
            assert b.ownership.takeovers == 0  # A let go when it left, not by its lease running out
            assert b.ownership.handoffs_requested == 0


async def _log_in_while(playing: Client, client: Client, token: str) -> tuple[dict[str, Any], float, tuple[str, int]]:
    ended: list[tuple[str, int]] = []
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            ended.append(await play_until_handed_over(playing))

        nursery.start_soon(watch)
        started = trio.current_time()
        welcome = await client.request("login", token=token)
        seconds = trio.current_time() - started
    return welcome, seconds, ended[0]


async def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=5) as http:
        return metric_samples((await http.get(f"http://127.0.0.1:{port}/metrics")).text)


@pytest.mark.mysql
async def test_a_frozen_worker_loses_its_player_after_its_lease_and_its_stale_save_is_refused(
    mysql_url: str, settings: Settings, tmp_path: Path
) -> None:
    lease = 2.0
    env = server_env(
        tmp_path / "unused.db", db_url=mysql_url, tick_hz=50, day_ticks=1, save_interval=0.2, lease_timeout=lease
    )
    b_settings = settings.replace(db_url=mysql_url, lease_timeout=lease)
    with trio.fail_after(90):
        async with serve_process(env, tmp_path) as a, running_app(b_settings) as b:
            async with Client.connect(a.ws_port) as on_a:
                token, first = await on_a.register("Frozen")
                pid = first["player"]
                for _ in range(25):
                    await on_a.frame()
                saved_by_now = on_a.view["age_days"]
                await trio.sleep(1.0)  # A saves every 0.2 s: what its client saw by then is saved

                a.proc.send_signal(signal.SIGSTOP)
                stopped = trio.current_time()
                with trio.move_on_after(0.3):  # what A sent before it froze
                    while True:
                        await on_a.frame()
                seen_on_a = on_a.view["age_days"]
                try:
                    async with Client.connect(b.ws_port) as on_b:
                        answer: dict[str, Any] = {}
                        for _ in range(5):  # busy while A's lease runs (the login's own deadline is 3 s)
                            answer = await on_b.request("login", token=token)
                            if answer["op"] == "welcome":
                                break
                            assert answer["code"] == "busy"
                        taken = trio.current_time() - stopped
                        assert answer["op"] == "welcome", answer
                        # No answer from A: B waited for the lease, and not much longer.
                        assert lease - 0.5 < taken < lease + 2.0, taken
                        assert b.ownership.takeovers == 1
                        loaded = answer["snapshot"]["age_days"]
                        # What A saved before it froze: never more than its client saw,
                        # and at least what it saw five save intervals before.
                        assert saved_by_now <= loaded <= seen_on_a
                        for _ in range(20):
                            await on_b.frame()
                        played_on_b = on_b.view["age_days"]
                        assert played_on_b > loaded
                finally:
                    a.proc.send_signal(signal.SIGCONT)
                # A wakes: its lease lapsed, so its player is told to go (1001,
                # reconnect) and its unsaved copy is refused by the epoch.
                assert (await on_a.op("bye"))["reason"] == "shutdown"
                assert await on_a.closed() == 1001

            async def fenced() -> float:
                samples = await _metrics(a.http_port)
                return samples.get(("baolife_saves_fenced_total", ()), 0.0)

            with trio.fail_after(10):
                while True:  # polled: a scrape has no event to wait on
                    if await fenced() >= 1:
                        break
                    await trio.sleep(0.1)
            samples = await _metrics(a.http_port)
            assert samples[("baolife_cluster_lease_lapses_total", ())] == 1
            # B's life is the one stored: A's stale save did not overwrite it.
            with trio.fail_after(10):
                while True:  # polled: B saves on its own schedule
                    entry = b.directory.get(pid)
                    if entry is not None and not entry.holds and not entry.dirty:
                        break
                    await trio.sleep(0.05)
            async with MysqlAdmin.open(mysql_url) as admin:
                assert await admin.player(pid) == (dump_player(entry.player), entry.epoch)
            assert entry.player.age_days >= played_on_b
            a.terminate()
            assert await a.exited() == 0


@pytest.mark.mysql
async def test_two_workers_under_one_id_are_refused_at_start(mysql_url: str, settings: Settings) -> None:
    s = settings.replace(db_url=mysql_url, worker_id="w-1", lease_timeout=2.0)
    with trio.fail_after(30):
        async with running_app(s) as a:
            with pytest.raises(ConfigError, match="BAOLIFE_WORKER_ID: worker id 'w-1' is in use"):
                await App(s).run()
            assert a.ownership.joined and not a.ownership.lost


async def test_workers_sharing_a_database_with_a_local_bus_are_not_ready(settings: Settings) -> None:
    local = settings.replace(lease_timeout=2.0)  # SQLite: the bus is local by default
    with trio.fail_after(30):
        async with running_app(local) as a, running_app(local) as b:
            async with httpx.AsyncClient(timeout=5) as http:
                for app in (a, b):
                    while True:  # A hears of B at its next renewal (half a second)
                        ready = await http.get(f"http://127.0.0.1:{app.http_port}/readyz")
                        if ready.status_code == 503:
                            break
                        await trio.sleep(0.1)
                    problems = ready.json()["problems"]
                    assert any("BAOLIFE_BUS_URL=local" in p for p in problems), problems
        # Alone, the same worker is ready.
        async with running_app(local) as alone:
            async with httpx.AsyncClient(timeout=5) as http:
                ready = await http.get(f"http://127.0.0.1:{alone.http_port}/readyz")
                assert ready.status_code == 200, ready.text


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([], "does not route players by id"),
        ([("X-BaoLife-Route", "player-id"), ("X-BaoLife-Store", "mysql")], "share a mysql store"),
        ([("X-BaoLife-Route", "player-id"), ("X-BaoLife-Store", "sqlite")], None),
    ],
)
async def test_a_worker_behind_a_proxy_that_breaks_the_cluster_says_so_on_readyz(
    settings: Settings, headers: list[tuple[str, str]], problem: str | None
) -> None:
    # The test client stands for the proxy: 127.0.0.1 is a trusted proxy here.
    s = settings.replace(trusted_proxies="127.0.0.1")
    with trio.fail_after(30):
        async with running_app(s) as app:
            url = f"ws://127.0.0.1:{app.ws_port}/ws?player=1"
            async with closing_transport(open_websocket_url(url, extra_headers=headers)) as ws:
                await Client(ws).register("Proxied")
            async with httpx.AsyncClient(timeout=5) as http:
                ready = await http.get(f"http://127.0.0.1:{app.http_port}/readyz")
            if problem is None:
                assert ready.status_code == 200, ready.text
            else:
                assert ready.status_code == 503
                assert any(problem in p for p in ready.json()["problems"]), ready.text


@pytest.mark.mysql
async def test_a_worker_cut_from_the_database_lets_its_players_go_and_never_overwrites(
    mysql_url: str, settings: Settings
) -> None:
    lease = 3.0
    fast = "?connect_timeout=1&timeout=1&save_timeout=1"
    with trio.fail_after(90):
        async with proxied(mysql_url) as proxy:
            a_settings = settings.replace(db_url=proxy.url(mysql_url) + fast, lease_timeout=lease)
            b_settings = settings.replace(db_url=mysql_url, lease_timeout=lease)
            async with running_app(a_settings) as a, running_app(b_settings) as b:
                async with Client.connect(a.ws_port) as on_a:
                    token, first = await on_a.register("Cut off")
                    pid = first["player"]
                    for _ in range(20):
                        await on_a.frame()
                    proxy.cut("blackhole")  # A's link to the database: a partition
                    cut_at = trio.current_time()
                    # A cannot renew: before its lease can run out on the
                    # database, it stops the life here (bye shutdown, 1001).
                    assert (await on_a.op("bye"))["reason"] == "shutdown"
                    assert await on_a.closed() == 1001
                    lapsed = trio.current_time() - cut_at
                    assert lapsed < lease, lapsed
                    assert pid not in a.loop.by_player
                async with httpx.AsyncClient(timeout=5) as http:
                    ready = await http.get(f"http://127.0.0.1:{a.http_port}/readyz")
                assert ready.status_code == 503 and any("lease lapsed" in p for p in ready.json()["problems"])

                # The player reconnects elsewhere: B takes it once A's lease ran out.
                async with Client.connect(b.ws_port) as on_b:
                    answer: dict[str, Any] = {}
                    for _ in range(5):
                        answer = await on_b.request("login", token=token)
                        if answer["op"] == "welcome":
                            break
                        assert answer["code"] == "busy"
                    assert answer["op"] == "welcome", answer
                    assert answer["snapshot"]["age_days"] <= on_a.view["age_days"]
                    for _ in range(10):
                        await on_b.frame()
                    await on_b.send("logout")
                    assert (await on_b.op("bye"))["reason"] == "logout"
                assert b.ownership.takeovers == 1

                proxy.restore()  # the partition heals: A renews, and saves what it kept
                with trio.fail_after(15):
                    while True:  # polled: A's saver and lease on their own schedules
                        entry_a = a.directory.get(pid)
                        if not a.ownership.lapsed and (entry_a is None or not entry_a.dirty):
                            break
                        await trio.sleep(0.1)
                with trio.fail_after(10):
                    while True:
                        entry = b.directory.get(pid)
                        if entry is not None and not entry.holds and not entry.dirty:
                            break
                        await trio.sleep(0.05)
                async with MysqlAdmin.open(mysql_url) as admin:
                    # B's life is the one stored, whatever A had unsaved.
                    assert await admin.player(pid) == (dump_player(entry.player), entry.epoch)
                # A's copy was fenced: refused if it was unsaved, never served again.
                assert entry_a is None or entry_a.fenced
