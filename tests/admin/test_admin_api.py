"""The admin API (issue 16) against a real server over real sockets: every
action and what a player sees of it on their WebSocket, the 401 and 403
paths, the bad inputs of item 5 (each a clear error that changes nothing),
the audit log, the rate limit and the metric of refused requests."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx
import orjson
import trio

from baolife.app import App
from baolife.config import Settings
from baolife.protocol import CloseCode
from tests.admin.conftest import (
    OPERATOR_TOKEN,
    SECOND_OPERATOR_TOKEN,
    VIEWER_TOKEN,
    AdminClient,
    admin_settings,
)
from tests.helpers import Client, metric_samples, running_app

FUTURE = 4_102_444_800  # 2100-01-01


async def logout(client: Client) -> None:
    await client.send("logout")
    assert await client.closed() == CloseCode.LOGOUT


async def new_player(app: App, name: str) -> tuple[int, str]:
    """Register a player and log out; (id, token)."""
    assert app.ws_port is not None
    async with Client.connect(app.ws_port) as client:
        registered = await client.request("register", name=name)
        assert registered["op"] == "registered"
        await logout(client)
    return int(registered["player"]), str(registered["token"])


async def login(app: App, token: str) -> dict[str, Any]:
    """The answer to a login with ``token`` (welcome or error); logs out after a welcome."""
    assert app.ws_port is not None
    async with Client.connect(app.ws_port) as client:
        answer = await client.request("login", token=token)
        if answer["op"] == "welcome":
            await logout(client)
        return answer


async def audit(ops: AdminClient) -> list[dict[str, Any]]:
    response = await ops.get("audit", limit=500)
    assert response.status_code == 200
    return list(response.json()["entries"])


# ----------------------------------------------------------------- on and off, tokens, roles


async def test_off_without_tokens_everything_under_admin_is_404(settings: Settings) -> None:
    with trio.fail_after(30):
        async with running_app(settings) as app:
            base = f"http://127.0.0.1:{app.http_port}"
            headers = {"authorization": f"Bearer {OPERATOR_TOKEN}"}
            async with httpx.AsyncClient() as http:
                for path in ("/admin/", "/admin/index.html", "/admin/api/whoami", "/admin/api/players?q=a"):
                    assert (await http.get(base + path, headers=headers)).status_code == 404, path
                assert (await http.post(base + "/admin/api/drain", headers=headers, json={})).status_code == 405
                # The console's files are not in the game's table either (no /v/<version>/admin/...).
                version = app.web.files.version
                assert (await http.get(f"{base}/v/{version}/admin/index.html")).status_code == 404
                assert (await http.get(base + "/")).status_code == 200  # the game's page still is
            assert not any(name.startswith("admin/") for name in app.web.files.files)


async def test_the_console_page_is_served_with_its_versioned_assets(admin_app: App) -> None:
    async with httpx.AsyncClient() as http:
        base = f"http://127.0.0.1:{admin_app.http_port}"
        page = await http.get(base + "/admin/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "%ASSETS%" not in page.text
        assets = admin_app.admin.files.assets
        assert f"/admin{assets}" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        script = await http.get(f"{base}/admin{assets}/main.js")
        assert script.status_code == 200 and "immutable" in script.headers["cache-control"]
        assert (await http.get(base + "/admin/../app.py")).status_code == 404


async def test_missing_forged_or_malformed_tokens_get_401_and_no_hint(admin_app: App) -> None:
    port = admin_app.http_port
    assert port is not None
    forged = "bla_" + "x" * 43
    cases: list[dict[str, str]] = [
        {},
        {"authorization": f"Bearer {forged}"},
        {"authorization": "Bearer"},
        {"authorization": f"Basic {OPERATOR_TOKEN}"},
        {"authorization": f"Bearer {OPERATOR_TOKEN}x"},
        {"authorization": "Bearer " + "a" * 5000},
    ]
    async with httpx.AsyncClient() as http:
        for headers in cases:
            for method, path in (("GET", "whoami"), ("GET", "no/such/path"), ("POST", "players/1/erase")):
                got = await http.request(method, f"http://127.0.0.1:{port}/admin/api/{path}", headers=headers)
                assert got.status_code == 401, (headers, path)
                assert got.json() == {"error": "unauthorized"}  # the same answer whatever exists
        metrics = metric_samples((await http.get(f"http://127.0.0.1:{port}/metrics")).content)
    assert metrics[("baolife_admin_requests_total", (("outcome", "unauthorized"),))] == len(cases) * 3
    assert metrics[("baolife_admin_requests_total", (("outcome", "ok"),))] == 0


async def test_whoami_names_the_token_and_its_role(ops: AdminClient, viewer: AdminClient) -> None:
    assert (await ops.get("whoami")).json() == {"name": "ops", "role": "operator"}
    assert (await viewer.get("whoami")).json() == {"name": "eve", "role": "viewer"}


async def test_a_viewer_reads_but_every_action_is_403_and_changes_nothing(
    admin_app: App, ops: AdminClient, viewer: AdminClient
) -> None:
    pid, token = await new_player(admin_app, "Vi Ewer")
    actions: list[tuple[str, str, Any]] = [
        ("POST", f"players/{pid}/kick", {"reason": "x"}),
        ("POST", f"players/{pid}/ban", {"reason": "x", "until": None}),
        ("POST", f"players/{pid}/unban", {}),
        ("POST", f"players/{pid}/mute", {"muted": True}),
        ("GET", f"players/{pid}/export", None),
        ("POST", f"players/{pid}/erase", {"confirm": pid}),
        ("POST", "notice", {"text": "hi", "until": FUTURE}),
        ("DELETE", "notice", None),
        ("POST", "llm/budget", {"budget": 1}),
        ("POST", "drain", {}),
        ("POST", "undrain", {}),
    ]
    for method, path, body in actions:
        got = await viewer.call(method, path, body)
        assert got.status_code == 403, path
        assert got.json() == {"error": "forbidden", "message": "needs the operator role"}
    for path in ("whoami", f"players/{pid}", "notice", "llm", "worker", "audit"):
        assert (await viewer.get(path)).status_code == 200, path
    assert (await viewer.get("players", q=str(pid))).status_code == 200
    page = (await ops.get(f"players/{pid}")).json()
    assert page["banned"] is None and page["muted"] is False
    assert (await ops.get("notice")).json() == {"notice": None}
    assert (await login(admin_app, token))["op"] == "welcome"
    assert admin_app.health.readiness() == []
    assert await audit(ops) == []


# ----------------------------------------------------------------- finding a player, their page


async def test_search_by_id_and_name_prefix(admin_app: App, ops: AdminClient) -> None:
    a, _ = await new_player(admin_app, "Minh Tran")
    b, _ = await new_player(admin_app, "Minh_Anh Le")
    c, _ = await new_player(admin_app, "Lan Pham")
    by_prefix = (await ops.get("players", q="Minh")).json()["players"]
    assert [p["id"] for p in by_prefix] == [a, b]
    assert {p["name"] for p in by_prefix} == {"Minh Tran", "Minh_Anh Le"}
    # Offline: the worker named is the one holding them (the cluster's owner), if any.
    assert all(p["online"] is False and p["banned"] is False for p in by_prefix)
    assert all(p["worker"] in (None, admin_app.worker_id) for p in by_prefix)
    assert [p["id"] for p in (await ops.get("players", q=str(c))).json()["players"]] == [c]
    # LIKE's wildcards are matched as themselves.
    assert (await ops.get("players", q="%")).json()["players"] == []
    assert [p["id"] for p in (await ops.get("players", q="Minh_")).json()["players"]] == [b]
    assert [p["id"] for p in (await ops.get("players", q="Minh", limit=1)).json()["players"]] == [a]
    for bad in ({"q": ""}, {"q": "x" * 65}, {"q": "M", "limit": "0"}, {"q": "M", "limit": "abc"}):
        got = await ops.get("players", **bad)
        assert got.status_code == 400 and got.json()["error"] == "bad_request", bad


async def test_a_players_page_shows_their_life_where_they_are_and_last_login(admin_app: App, ops: AdminClient) -> None:
    pid, token = await new_player(admin_app, "Bao Page")
    assert (await ops.get("players/999999")).status_code == 404
    assert (await ops.get("players/abc")).json()["error"] == "bad_request"
    assert admin_app.ws_port is not None
    async with Client.connect(admin_app.ws_port) as client:
        welcome = await client.request("login", token=token)
        page = (await ops.get(f"players/{pid}")).json()
        assert page["online"] is True and page["worker"] == admin_app.actions.worker
        snapshot = welcome["snapshot"]
        life = page["life"]
        assert life["number"] == snapshot["life"] and life["alive"] is True
        assert life["stage"] == snapshot["stage"]
        assert set(life["stats"]) == {"health", "happiness", "smarts", "looks"}
        assert [n["name"] for n in life["npcs"]] == [n["name"] for n in snapshot["npcs"]]
        assert life["feed"][-1]["text"] == snapshot["feed"][-1]
        assert page["ai_today"] == {"calls": 0, "cost": 0.0}
        assert page["name"] == "Bao Page" and page["banned"] is None and page["muted"] is False
        # Logged in after the registration's session was released: a worker loaded the player.
        assert page["last_login"] is not None and abs(page["last_login"] - time.time()) < 60
        await logout(client)
    offline = (await ops.get(f"players/{pid}")).json()
    assert offline["online"] is False and offline["worker"] in (None, admin_app.worker_id)
    assert offline["life"]["number"] == life["number"]


# ----------------------------------------------------------------- kick, ban, mute


async def test_kick_ends_the_session_with_the_operators_reason(admin_app: App, ops: AdminClient) -> None:
    pid, token = await new_player(admin_app, "Kick Me")
    assert admin_app.ws_port is not None
    async with Client.connect(admin_app.ws_port) as client:
        await client.request("login", token=token)
        got = await ops.post(f"players/{pid}/kick", {"reason": "please stop flooding"})
        assert got.status_code == 200 and got.json() == {"ok": True}
        bye = await client.op("bye")
        assert bye == {"op": "bye", "reason": "kicked", "message": "please stop flooding"}
        assert await client.closed() == CloseCode.KICKED
    assert (await login(admin_app, token))["op"] == "welcome"  # a kick is not a ban
    entry = (await audit(ops))[0]
    assert entry["action"] == "kick" and entry["player"] == pid and entry["who"] == "ops"
    assert entry["role"] == "operator" and entry["from"] == "127.0.0.1"
    assert entry["detail"] == {"reason": "please stop flooding"}
    assert (await ops.post("players/424242/kick", {"reason": "x"})).status_code == 404


async def test_ban_ends_the_session_refuses_login_with_banned_and_unban_lifts_it(
    admin_app: App, ops: AdminClient
) -> None:
    pid, token = await new_player(admin_app, "Ban Me")
    assert admin_app.ws_port is not None
    until = int(time.time()) + 3600
    async with Client.connect(admin_app.ws_port) as client:
        await client.request("login", token=token)
        got = await ops.post(f"players/{pid}/ban", {"reason": "abusive messages", "until": until})
        assert got.status_code == 200 and got.json() == {"ok": True, "until": until}
        bye = await client.op("bye")
        assert bye["reason"] == "banned" and "abusive messages" in bye["message"]
        assert await client.closed() == CloseCode.KICKED
    refused = await login(admin_app, token)
    assert refused["op"] == "error" and refused["code"] == "banned"
    assert refused["reason"] == "abusive messages" and refused["until"] == until
    async with Client.connect(admin_app.ws_port) as client:  # resume is refused alike
        resumed = await client.request("resume", token=token, last_seq=0)
        assert resumed["code"] == "banned"
    page = (await ops.get(f"players/{pid}")).json()
    assert page["banned"]["reason"] == "abusive messages" and page["banned"]["by"] == "ops"
    assert (await ops.get("players", q=str(pid))).json()["players"][0]["banned"] is True
    assert (await ops.post(f"players/{pid}/unban")).json() == {"ok": True, "was_banned": True}
    assert (await login(admin_app, token))["op"] == "welcome"
    assert (await ops.post(f"players/{pid}/unban")).json() == {"ok": True, "was_banned": False}
    assert [e["action"] for e in await audit(ops)][:3] == ["unban", "unban", "ban"]


async def test_a_ban_without_end_and_one_that_expired(admin_app: App, ops: AdminClient) -> None:
    pid, token = await new_player(admin_app, "For Ever")
    assert (await ops.post(f"players/{pid}/ban", {"reason": "cheating"})).json() == {"ok": True, "until": None}
    refused = await login(admin_app, token)
    assert refused["code"] == "banned" and "until" not in refused
    # An expired ban (written as if set long ago) no longer refuses anything.
    from baolife.db.store import Ban

    await admin_app.store.set_ban(pid, Ban("old", int(time.time()) - 10, "ops", 0))
    assert (await login(admin_app, token))["op"] == "welcome"
    assert (await ops.get(f"players/{pid}")).json()["banned"] is None


async def test_bad_ban_requests_are_refused_and_change_nothing(admin_app: App, ops: AdminClient) -> None:
    pid, token = await new_player(admin_app, "Not Banned")
    past = int(time.time()) - 60
    bad: list[Any] = [
        {"reason": "x", "until": past},
        {"reason": "x", "until": "tomorrow"},
        {"reason": "x", "until": True},
        {"reason": "", "until": None},
        {"reason": "   "},
        {"until": None},
        {"reason": 5},
        {"reason": "x" * 501},
        {"reason": "bell\x07"},
    ]
    for body in bad:
        got = await ops.post(f"players/{pid}/ban", body)
        assert got.status_code == 400 and got.json()["error"] == "bad_request", body
        assert got.json()["message"]
    past_answer = await ops.post(f"players/{pid}/ban", {"reason": "x", "until": past})
    assert "past" in past_answer.json()["message"]
    for raw in (b"not json", b"[1, 2]", b'"text"'):
        async with httpx.AsyncClient() as http:
            got = await http.post(ops.base + f"players/{pid}/ban", content=raw, headers=ops.headers())
        assert got.status_code == 400, raw
    assert (await ops.post("players/777777/ban", {"reason": "x"})).status_code == 404
    assert (await login(admin_app, token))["op"] == "welcome"
    assert await audit(ops) == []


async def test_mute_stops_npc_talk_and_unmute_restores_it(admin_app: App, ops: AdminClient) -> None:
    pid, token = await new_player(admin_app, "Loud Mouth")
    assert admin_app.ws_port is not None
    async with Client.connect(admin_app.ws_port) as client:
        welcome = await client.request("login", token=token)
        npc = welcome["snapshot"]["npcs"][0]["id"]
        assert (await ops.post(f"players/{pid}/mute", {"muted": True})).json() == {"ok": True, "muted": True}
        refused = await client.request("say", npc=npc, text="hello")
        assert refused["op"] == "error" and refused["code"] == "not_allowed"
        assert (await ops.get(f"players/{pid}")).json()["muted"] is True
        assert (await ops.post(f"players/{pid}/mute", {"muted": "yes"})).status_code == 400
        assert (await ops.post(f"players/{pid}/mute", {"muted": False})).json()["muted"] is False
        assert (await client.request("say", npc=npc, text="hello again"))["op"] == "ack"
        await client.op("npc_say")
    assert [e["action"] for e in await audit(ops)][:2] == ["unmute", "mute"]


async def test_mutes_and_the_notice_outlive_a_restart(settings: Settings) -> None:
    s = admin_settings(settings)
    with trio.fail_after(60):
        async with running_app(s) as app:
            pid, _ = await new_player(app, "Still Muted")
            assert app.http_port is not None
            ops = AdminClient(app.http_port, OPERATOR_TOKEN)
            await ops.post(f"players/{pid}/mute", {"muted": True})
            await ops.post("notice", {"text": "maintenance at 10:00", "until": FUTURE})
        async with running_app(s) as app:
            assert pid in app.world.muted
            assert app.http_port is not None
            notice = (await AdminClient(app.http_port, VIEWER_TOKEN).get("notice")).json()["notice"]
            assert notice["text"] == "maintenance at 10:00" and notice["by"] == "ops"


# ----------------------------------------------------------------- export and erase


async def test_export_holds_the_account_every_life_and_conversations(admin_app: App, ops: AdminClient) -> None:
    pid, token = await new_player(admin_app, "Data Subject")
    assert admin_app.ws_port is not None
    async with Client.connect(admin_app.ws_port) as client:
        welcome = await client.request("login", token=token)
        npc = welcome["snapshot"]["npcs"][0]["id"]
        assert (await client.request("say", npc=npc, text="tell me a story"))["op"] == "ack"
        await client.op("npc_say")
        got = await ops.get(f"players/{pid}/export")
        await logout(client)
    assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
    doc = got.json()
    assert doc["account"]["id"] == pid and doc["account"]["name"] == "Data Subject"
    assert doc["save"]["name"] == "Data Subject"
    talk = [c for c in doc["conversations"] if c["npc"] == npc]
    assert talk and talk[0]["turns"][0] == {"who": "player", "text": "tell me a story"}
    assert talk[0]["turns"][1]["who"] == "npc"
    assert isinstance(doc["lives"], list) and doc["ai_usage"] == []  # the offline NPCs cost nothing
    assert (await audit(ops))[0]["action"] == "export"
    assert (await ops.get("players/31337/export")).status_code == 404


async def test_erase_ends_the_session_kills_the_token_and_keeps_no_personal_data(
    admin_app: App, ops: AdminClient
) -> None:
    pid, token = await new_player(admin_app, "Forget Me")
    other, other_token = await new_player(admin_app, "Keep Me")
    assert admin_app.ws_port is not None
    async with Client.connect(admin_app.ws_port) as client:
        await client.request("login", token=token)
        await ops.post(f"players/{pid}/ban", {"reason": "before erase"})
    async with Client.connect(admin_app.ws_port) as client:
        # Unban so the player can be online when erased.
        await ops.post(f"players/{pid}/unban")
        await client.request("login", token=token)
        for wrong in ({}, {"confirm": other}, {"confirm": str(pid)}, {"confirm": True}):
            got = await ops.post(f"players/{pid}/erase", wrong)
            assert got.status_code == 400 and str(pid) in got.json()["message"], wrong
        got = await ops.post(f"players/{pid}/erase", {"confirm": pid})
        assert got.status_code == 200 and got.json() == {"ok": True}
        bye = await client.op("bye")
        assert bye["reason"] == "erased"
        assert await client.closed() == CloseCode.KICKED
    refused = await login(admin_app, token)
    assert refused["op"] == "error" and refused["code"] == "invalid_token"
    # Erasing twice, banning, muting, reading or exporting the erased player: 409, nothing changes.
    for method, path, body in (
        ("POST", f"players/{pid}/erase", {"confirm": pid}),
        ("POST", f"players/{pid}/ban", {"reason": "x"}),
        ("POST", f"players/{pid}/mute", {"muted": True}),
        ("POST", f"players/{pid}/kick", {"reason": "x"}),
        ("POST", f"players/{pid}/unban", {}),
        ("GET", f"players/{pid}", None),
        ("GET", f"players/{pid}/export", None),
    ):
        got = await ops.call(method, path, body)
        assert got.status_code == 409 and got.json()["error"] == "conflict", path
    assert (await ops.get("players", q="Forget")).json()["players"] == []
    assert await admin_app.store.get_ban(pid) is None
    assert await admin_app.store.player_state(pid) is None
    # The other player is untouched.
    assert (await login(admin_app, other_token))["op"] == "welcome"
    assert (await ops.get(f"players/{other}")).status_code == 200
    entries = await audit(ops)
    erase = [e for e in entries if e["action"] == "erase"]
    assert len(erase) == 1 and erase[0]["player"] == pid and erase[0]["detail"] == {}
    assert "Forget Me" not in orjson.dumps(entries).decode()


async def test_two_operators_acting_on_one_player_at_once(admin_app: App) -> None:
    assert admin_app.http_port is not None
    first = AdminClient(admin_app.http_port, OPERATOR_TOKEN)
    second = AdminClient(admin_app.http_port, SECOND_OPERATOR_TOKEN)
    pid, _ = await new_player(admin_app, "Contested")
    answers: list[int] = []

    async def erase(client: AdminClient) -> None:
        answers.append((await client.post(f"players/{pid}/erase", {"confirm": pid})).status_code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(erase, first)
        nursery.start_soon(erase, second)
    assert sorted(answers) == [200, 409]
    # A ban racing an erase: either lands first (then the erase deletes it) or finds the player gone.
    pid2, _ = await new_player(admin_app, "Contested Two")
    results: dict[str, int] = {}

    async def act(name: str, client: AdminClient, path: str, body: Any) -> None:
        results[name] = (await client.post(path, body)).status_code

    async with trio.open_nursery() as nursery:
        nursery.start_soon(act, "ban", first, f"players/{pid2}/ban", {"reason": "race"})
        nursery.start_soon(act, "erase", second, f"players/{pid2}/erase", {"confirm": pid2})
    assert results["erase"] == 200 and results["ban"] in (200, 409)
    assert await admin_app.store.get_ban(pid2) is None
    erases = [e for e in await audit(first) if e["action"] == "erase"]
    assert sorted(e["player"] for e in erases) == [pid, pid2]
    assert {e["who"] for e in erases} <= {"ops", "ops2"}


# ----------------------------------------------------------------- notice


async def test_notice_reaches_players_now_and_at_login_until_withdrawn(admin_app: App, ops: AdminClient) -> None:
    pid, token = await new_player(admin_app, "Listener")
    assert admin_app.ws_port is not None
    until = int(time.time()) + 600
    async with Client.connect(admin_app.ws_port) as client:
        await client.request("login", token=token)
        got = await ops.post("notice", {"text": "Restart at 14:00 UTC", "until": until})
        assert got.status_code == 200 and got.json()["notice"]["text"] == "Restart at 14:00 UTC"
        assert await client.op("notice") == {"op": "notice", "text": "Restart at 14:00 UTC", "until": until}
        await logout(client)
    async with Client.connect(admin_app.ws_port) as client:
        ref = await client.send("login", token=token)
        await client.op("welcome", ref=ref)
        first_after = await client.op()
        assert first_after == {"op": "notice", "text": "Restart at 14:00 UTC", "until": until}
        notice = (await ops.get("notice")).json()["notice"]
        assert notice == {"text": "Restart at 14:00 UTC", "until": until, "by": "ops", "at": notice["at"]}
        assert (await ops.call("DELETE", "notice")).json() == {"ok": True, "had_notice": True}
        assert await client.op("notice") == {"op": "notice", "text": "", "until": 0}
        await logout(client)
    async with Client.connect(admin_app.ws_port) as client:
        ref = await client.send("login", token=token)
        await client.op("welcome", ref=ref)
        await client.request("ping")
        assert not any(op["op"] == "notice" for op in client.seen)
    assert (await ops.get("notice")).json() == {"notice": None}
    assert [e["action"] for e in await audit(ops)][:2] == ["notice_withdrawn", "notice"]


async def test_bad_notices_are_refused(admin_app: App, ops: AdminClient) -> None:
    now = int(time.time())
    for body in (
        {"text": "", "until": now + 60},
        {"text": "x" * 281, "until": now + 60},
        {"text": "late", "until": now - 1},
        {"text": "no end"},
        {"text": 12, "until": now + 60},
        {"text": "str", "until": "soon"},
    ):
        got = await ops.post("notice", body)
        assert got.status_code == 400 and got.json()["error"] == "bad_request", body
    assert (await ops.post("notice", {"text": "x" * 280, "until": now + 60})).status_code == 200
    assert (await ops.get("notice")).json()["notice"]["text"] == "x" * 280


# ----------------------------------------------------------------- LLM figures, worker, drain


async def test_llm_figures_and_a_live_budget(admin_app: App, ops: AdminClient) -> None:
    figures = (await ops.get("llm")).json()
    assert set(figures) >= {"day", "calls", "cost", "cache_hit_rate", "budget", "budget_left"}
    assert figures["budget"] == admin_app.settings.ai_daily_budget
    for bad in ({"budget": -1}, {"budget": "10"}, {"budget": None}, {"budget": 1e12}, {}):
        got = await ops.post("llm/budget", bad)
        assert got.status_code == 400, bad
    assert (await ops.post("llm/budget", {"budget": 12.5})).json() == {"ok": True, "budget": 12.5}
    assert (await ops.get("llm")).json()["budget"] == 12.5
    entry = (await audit(ops))[0]
    assert entry["action"] == "budget" and entry["detail"]["budget"] == 12.5


async def test_worker_panel_and_drain_undrain(admin_app: App, ops: AdminClient) -> None:
    port = admin_app.http_port
    panel = (await ops.get("worker")).json()
    assert panel["worker"] == admin_app.actions.worker and panel["ready"] is True and panel["draining"] is False
    for key in ("players_online", "connections", "loaded", "save_errors", "errors"):
        assert isinstance(panel[key], int), key
    assert panel["tick_ms_p99"] >= panel["tick_ms_p50"] > 0
    drained = (await ops.post("drain")).json()
    # Alone on its database: nobody to hand players to, so they stay.
    assert drained["draining"] is True and drained["moving_players_in"] is None
    async with httpx.AsyncClient() as http:
        ready = await http.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 503 and "draining" in ready.json()["problems"]
        assert (await ops.get("worker")).json()["draining"] is True
        assert (await ops.post("undrain")).json()["draining"] is False
        assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    assert [e["action"] for e in await audit(ops)][:2] == ["undrain", "drain"]


# ----------------------------------------------------------------- bodies, methods, rate


async def test_a_10_mb_body_gets_413_and_changes_nothing(admin_app: App, ops: AdminClient) -> None:
    pid, token = await new_player(admin_app, "Big Body")
    assert admin_app.http_port is not None
    body = b'{"reason": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    head = (
        f"POST /admin/api/players/{pid}/ban HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"authorization: Bearer {OPERATOR_TOKEN}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    with trio.fail_after(20):
        stream = await trio.open_tcp_stream("127.0.0.1", admin_app.http_port)
        answer = b""
        async with stream:
            await stream.send_all(head)

            async def send_body() -> None:
                # The server stops reading after a while: a broken pipe is expected.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(body)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_body)
                try:
                    while b"\r\n\r\n" not in answer:
                        data = await stream.receive_some(65536)
                        if not data:
                            break
                        answer += data
                finally:
                    nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    # Chunked, without a length: stopped at the limit too.
    async with httpx.AsyncClient() as http:

        async def chunks() -> Any:
            for _ in range(40):
                yield b"x" * 4096

        got = await http.post(ops.base + f"players/{pid}/ban", content=chunks(), headers=ops.headers())
        assert got.status_code == 413 and got.json()["error"] == "too_large"
    assert (await login(admin_app, token))["op"] == "welcome"
    assert await audit(ops) == []


async def test_unknown_paths_and_methods(ops: AdminClient) -> None:
    assert (await ops.get("nothing")).status_code == 404
    assert (await ops.get("players/1/nothing")).status_code == 404
    got = await ops.call("PUT", "notice", {})
    assert got.status_code == 405 and "POST" in got.headers["allow"]
    assert (await ops.call("GET", "drain")).status_code == 405
    many = {f"k{i}": str(i) for i in range(30)}
    assert (await ops.get("players", q="x", **many)).json()["error"] == "bad_request"


async def test_rate_limit_per_address_and_failed_tokens_cost_more(settings: Settings) -> None:
    s = admin_settings(settings).replace(admin_rate=0.5, admin_burst=6)
    with trio.fail_after(30):
        async with running_app(s) as app:
            assert app.http_port is not None
            ops = AdminClient(app.http_port, OPERATOR_TOKEN)
            forged = AdminClient(app.http_port, "bla_nope")
            assert (await forged.get("whoami")).status_code == 401  # costs 1 + 5: the bucket is empty
            limited = await ops.get("whoami")
            assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
            async with httpx.AsyncClient() as http:
                metrics = metric_samples((await http.get(f"http://127.0.0.1:{app.http_port}/metrics")).content)
            assert metrics[("baolife_admin_requests_total", (("outcome", "rate_limited"),))] == 1
            # The game's own routes are not limited by the admin API's bucket.
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"http://127.0.0.1:{app.http_port}/healthz")).status_code == 200


async def test_tokens_from_a_file(settings: Settings, tmp_path: Any) -> None:
    from baolife.admin.tokens import token_line

    path = tmp_path / "admin-tokens"
    path.write_text(f"# operators\n{token_line('filed', 'viewer', VIEWER_TOKEN)}\n")
    with trio.fail_after(30):
        async with running_app(settings.replace(admin_tokens=f"@{path}")) as app:
            assert app.http_port is not None
            got = await AdminClient(app.http_port, VIEWER_TOKEN).get("whoami")
            assert got.json() == {"name": "filed", "role": "viewer"}
