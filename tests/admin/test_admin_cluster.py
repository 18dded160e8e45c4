"""Operators' actions across workers (issue 16 with issue 13's bus): two
workers share one database and its bus; an action asked of worker A reaches
a player playing on worker B within a second, and every worker says the same
of who is online where."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio

from baolife.app import App
from baolife.cluster import BusEvent
from baolife.config import Settings
from baolife.protocol import CloseCode
from tests.admin.conftest import OPERATOR_TOKEN, AdminClient, admin_settings
from tests.admin.test_admin_api import FUTURE
from tests.helpers import Client, running_app
from tests.serverproc import serve_process, server_env

WITHIN = 1.0  # seconds from the API's answer to the player on the other worker seeing it


def shared(settings: Settings) -> Settings:
    return admin_settings(settings).replace(bus_url="db", bus_poll=0.05)


async def played_on(worker: App, name: str) -> tuple[int, str]:
    assert worker.ws_port is not None
    async with Client.connect(worker.ws_port) as client:
        registered = await client.request("register", name=name)
        await client.send("logout")
        await client.closed()
    return int(registered["player"]), str(registered["token"])


async def test_ban_erase_mute_and_notice_on_a_only_reach_a_player_on_b(settings: Settings) -> None:
    s = shared(settings)
    with trio.fail_after(90):
        async with running_app(s) as a, running_app(s) as b:
            assert a.http_port is not None and b.ws_port is not None
            ops = AdminClient(a.http_port, OPERATOR_TOKEN)
            banned, banned_token = await played_on(b, "On B Banned")
            erased, erased_token = await played_on(b, "On B Erased")
            muted, muted_token = await played_on(b, "On B Muted")

            async with Client.connect(b.ws_port) as client:
                welcome = await client.request("login", token=muted_token)
                npc = welcome["snapshot"]["npcs"][0]["id"]
                arrived = trio.Event()
                handle = b.bus_handlers["admin.mute"]

                def seen(event: BusEvent) -> None:
                    handle(event)
                    arrived.set()

                b.bus_handlers["admin.mute"] = seen
                assert (await ops.post(f"players/{muted}/mute", {"muted": True})).status_code == 200
                with trio.fail_after(WITHIN):
                    await arrived.wait()
                assert muted in b.world.muted
                assert (await client.request("say", npc=npc, text="hi"))["code"] == "not_allowed"
                until = int(time.time()) + 600
                assert (await ops.post("notice", {"text": "Restart soon", "until": until})).status_code == 200
                with trio.fail_after(WITHIN):
                    assert await client.op("notice") == {"op": "notice", "text": "Restart soon", "until": until}

            for pid, token, action, body in (
                (banned, banned_token, "ban", {"reason": "spam", "until": FUTURE}),
                (erased, erased_token, "erase", {"confirm": erased}),
            ):
                async with Client.connect(b.ws_port) as client:
                    await client.request("login", token=token)
                    page = (await ops.get(f"players/{pid}")).json()
                    assert page["worker"] == b.worker_id  # the owner, from A
                    got = await ops.post(f"players/{pid}/{action}", body)
                    assert got.status_code == 200, got.text
                    with trio.fail_after(WITHIN):
                        bye = await client.op("bye")
                        assert await client.closed() == CloseCode.KICKED
                    assert bye["reason"] == {"ban": "banned", "erase": "erased"}[action]
            # Neither can come back, on either worker.
            for worker in (a, b):
                assert worker.ws_port is not None
                async with Client.connect(worker.ws_port) as client:
                    assert (await client.request("login", token=banned_token))["code"] == "banned"
                    assert (await client.request("login", token=erased_token))["code"] == "invalid_token"


async def test_drain_moves_a_workers_players_to_the_other(settings: Settings) -> None:
    s = shared(settings)
    with trio.fail_after(60):
        async with running_app(s) as a, running_app(s) as b:
            assert a.http_port is not None and a.ws_port is not None and b.ws_port is not None
            pid, token = await played_on(a, "Moves Over")
            a.actions.move_after = 0.2  # the proxy's detection time, shortened for the test
            async with Client.connect(a.ws_port) as client:
                await client.request("login", token=token)
                drained = (await AdminClient(a.http_port, OPERATOR_TOKEN).post("drain")).json()
                assert drained["moving_players_in"] == 0.2
                assert a.health.readiness() == ["draining"]
                with trio.fail_after(5):
                    assert (await client.op("bye"))["reason"] == "shutdown"
                    assert await client.closed() == CloseCode.SHUTDOWN
            # As the proxy would, the client resumes on the ready worker, which takes the player over.
            async with Client.connect(b.ws_port) as client:
                welcome = await client.request("resume", token=token, last_seq=0)
                assert welcome["op"] == "welcome" and welcome["player"] == pid
                assert pid in b.loop.by_player and pid not in a.loop.by_player


async def where(worker: App, pid: int, name: str, *, settled: bool = True) -> tuple[bool, str | None]:
    """What ``worker``'s console says of the player, on their page and in a
    search (which must agree when ``settled``: not while a lease may run out
    between the two requests)."""
    assert worker.http_port is not None
    ops = AdminClient(worker.http_port, OPERATOR_TOKEN)
    page = (await ops.get(f"players/{pid}")).json()
    if settled:
        found = [p for p in (await ops.get("players", q=name)).json()["players"] if p["id"] == pid]
        assert len(found) == 1 and (found[0]["online"], found[0]["worker"]) == (page["online"], page["worker"])
    return page["online"], page["worker"]


async def test_every_worker_says_where_a_player_is_online(settings: Settings) -> None:
    s = shared(settings)
    with trio.fail_after(60):
        async with running_app(s) as a, running_app(s) as b:
            assert b.ws_port is not None
            pid, token = await played_on(b, "Seen Everywhere")
            await b.presence.settled()
            for worker in (a, b):
                assert await where(worker, pid, "Seen Everywhere") == (False, b.worker_id)  # owner, offline

            async with Client.connect(b.ws_port) as client:
                await client.request("login", token=token)
                for worker in (a, b):
                    assert await where(worker, pid, "Seen Everywhere") == (True, b.worker_id)
                await client.send("logout")
                await client.closed()
            # B's tick let the player go as it closed: the flag's write is B's next.
            with trio.fail_after(5):
                await b.presence.settled()
            for worker in (a, b):
                assert await where(worker, pid, "Seen Everywhere") == (False, b.worker_id)
            assert b.presence.written == 2 and b.presence.failures == 0

            # Back on B and away without a logout (the connection just ends):
            # B's tick loop lets the player go at its next tick.
            gone = trio.Event()
            hook = b.loop.on_online

            def seen(player: int, online: bool) -> None:
                hook(player, online)
                if player == pid and not online:
                    gone.set()

            b.loop.on_online = seen
            async with Client.connect(b.ws_port) as client:
                await client.request("login", token=token)
                assert await where(a, pid, "Seen Everywhere") == (True, b.worker_id)
            with trio.fail_after(5):
                await gone.wait()
                await b.presence.settled()
            assert await where(a, pid, "Seen Everywhere") == (False, b.worker_id)


async def test_a_killed_workers_player_reads_offline_once_its_lease_ran_out(settings: Settings, tmp_path: Path) -> None:
    lease = 2.0
    a_settings = shared(settings).replace(lease_timeout=lease)
    db = Path(a_settings.db_url.removeprefix("sqlite:///"))
    env = server_env(db, bus_url="db", bus_poll=0.05, lease_timeout=lease, worker_id="b-killed")
    with trio.fail_after(60):
        async with running_app(a_settings) as a, serve_process(env, tmp_path) as b:
            async with Client.connect(b.ws_port) as client:
                registered: dict[str, Any] = await client.request("register", name="On A Doomed Worker")
                pid = int(registered["player"])
                assert await where(a, pid, "On A Doomed") == (True, "b-killed")
                b.proc.kill()
                killed = trio.current_time()
                # Until its lease runs out the row is B's word; then nobody holds the player.
                while await where(a, pid, "On A Doomed", settled=False) != (False, None):
                    assert trio.current_time() - killed < lease + 2.0
                    await trio.sleep(0.1)
                assert await where(a, pid, "On A Doomed") == (False, None)
