"""The operators' console (/admin/) in headless Chromium against a real
server with an operator's and a viewer's token, at a desktop's size and a
phone's: signing in (a forged token refused), the live worker panel that
refreshes by itself, search, a player's page, export, a ban that ends the
player's session and makes their login fail with ``banned`` (its reason,
full of markup, shown as text), unban, mute, kick, erase with a typed
confirmation, an error from the server next to the control that caused it,
an announcement that a player gets at login, the day's NPC budget, drain,
the audit log, signing out, all within the page's Content-Security-Policy.
A viewer sees every action disabled and gets 403 when it forces a request
anyway. And the player's side, in the game's page: the announcement as a
banner, a kick and a ban with the operator's reason.

Players are made and checked over the game's own WebSocket (tests/helpers
Client) in the test's Trio loop; the browser runs in a worker thread and
calls back with ``trio.from_thread.run``. One module, though long: every
scenario runs in the same world (server, tokens, players, helpers) and
reads as one story of the console.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from browser import DESKTOP, PHONE, Server, in_browser, number, shot
from helpers import Client
from playwright.sync_api import Page, expect
from test_web_defences import WATCH_VIOLATIONS
from trio_websocket import ConnectionClosed

from baolife.admin.tokens import new_token, token_line
from baolife.config import Settings
from baolife.content.schema import Content

pytestmark = pytest.mark.browser

BUDGET = 90  # seconds for a scenario in the browser, browser start included
SLACK = 20  # for the server to start and stop around it
WIRE_S = 5.0  # for one exchange over the game's WebSocket
SIZES = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")]
OPERATOR = "Olga"
VIEWER = "Vic"
# A reason an operator might paste: markup that must stay text on the page.
EVIL_REASON = 'spam <img src=x onerror="window.__pwned=1"> & <b>more</b>'
NOTICE = "Restart at 14:00 <b>UTC</b>: back in 5 minutes"
ACTION_BUTTONS = (
    *("kick-btn", "ban-btn", "unban-btn", "mute-btn", "export-btn", "erase-btn"),
    *("notice-btn", "notice-clear", "budget-btn", "drain-btn", "undrain-btn"),
)
WORKER_MS = 3000  # the live panel's refresh (baolife/web/admin/main.js)
OP_CONTROLS = "#console button.op:enabled, #console input.op:enabled, #console textarea.op:enabled"


@attrs.define
class Someone:
    """A player made for the scenario over the WebSocket."""

    name: str
    token: str
    id: int
    ended: trio.Event = attrs.field(factory=trio.Event)  # their connection was closed by the server
    bye: dict[str, Any] | None = None


@attrs.define
class World:
    """The server and its players, as the scenario in the browser sees them."""

    server: Server
    operator: str  # tokens
    viewer: str
    online: Someone  # connected all along (until an operator bans them)
    kicked: Someone  # connected until kicked
    double: Someone  # erased by "another operator" while the page shows them
    eraser: Someone  # erased from the console
    reader: Someone  # logs in after the announcement

    @property
    def admin(self) -> str:
        return self.server.url + "admin/"

    @property
    def ws_port(self) -> int:
        assert self.server.app is not None and self.server.app.ws_port is not None
        return self.server.app.ws_port


async def _register(port: int, name: str) -> Someone:
    async with Client.connect(port) as client:
        with trio.fail_after(WIRE_S):
            token, welcome = await client.register(name)
    return Someone(name, token, int(welcome["player"]))


async def _stay_online(port: int, name: str, *, task_status: trio.TaskStatus[Someone]) -> None:
    """Register ``name`` and stay connected, reading frames, until the server
    closes the connection (then ``ended`` is set, with the bye op if any)."""
    async with Client.connect(port) as client:
        with trio.fail_after(WIRE_S):
            token, welcome = await client.register(name)
        someone = Someone(name, token, int(welcome["player"]))
        task_status.started(someone)
        with contextlib.suppress(ConnectionClosed):
            while True:
                await client.frame()
        byes = [op for frame in client.frames for op in frame["ops"] if op["op"] == "bye"]
        someone.bye = byes[-1] if byes else None
        someone.ended.set()


async def _login(port: int, token: str, then: str | None = None) -> list[dict[str, Any]]:
    """Log in with ``token``: the answer (``welcome`` or ``error``), and when
    ``then`` names an op, the first such op after the welcome too."""
    async with Client.connect(port) as client:
        with trio.fail_after(WIRE_S):
            answer = await client.request("login", token=token)
            if then is None or answer["op"] != "welcome":
                return [answer]
            return [answer, await client.op(then)]


async def _ended(someone: Someone) -> None:
    with trio.fail_after(WIRE_S):
        await someone.ended.wait()


def _wire(fn: Callable[..., Any], *args: Any) -> Any:
    """Run the async ``fn(*args)`` in the test's Trio loop, from the browser's thread."""
    return trio.from_thread.run(fn, *args)


def _fetch(page: Page, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A request to the admin API from the page with the token it holds, as a
    person could type in the browser's console: {status, body}."""
    return page.evaluate(
        """async ([method, path, body]) => {
             const headers = { authorization: `Bearer ${sessionStorage.getItem("baolife.admin.token")}` };
             if (body !== null) headers["content-type"] = "application/json";
             const sent = body === null ? undefined : JSON.stringify(body);
             const r = await fetch(`/admin/api/${path}`, { method, headers, body: sent });
             let data = null;
             try { data = await r.json(); } catch (_e) { data = null; }
             return { status: r.status, body: data };
           }""",
        [method, path, body],
    )


def _sign_in(page: Page, world: World, token: str, who: str) -> None:
    page.add_init_script(WATCH_VIOLATIONS)
    page.goto(world.admin)
    expect(page.locator("#sign-in")).to_be_visible()
    page.fill("#token", token)
    page.click("#sign-in-btn")
    expect(page.locator("#who")).to_have_text(who)
    expect(page.locator("#console")).to_be_visible()


def _figure(page: Page, card: str, label: str) -> str:
    return page.locator(f"#{card} .fact", has=page.locator("dt", has_text=label)).locator("dd").inner_text()


def _open(page: Page, someone: Someone) -> None:
    """The player's page from a search by name prefix."""
    page.fill("#q", someone.name.split()[0])
    page.click("#search-btn")
    found = page.locator(f'#results li[data-player="{someone.id}"]')
    expect(found).to_contain_text(someone.name)
    found.locator("a").click()
    expect(page.locator("#p-name")).to_have_text(someone.name)
    expect(page.locator("#p-id")).to_have_text(f"#{someone.id}")
    expect(page.locator("#p-note")).to_have_text("")


# ------------------------------------------------------------------ an operator


def _operator(world: World, page: Page) -> None:
    # A forged token: refused next to the form, nothing kept.
    page.add_init_script(WATCH_VIOLATIONS)
    loaded: list[str] = []
    page.on("response", lambda response: loaded.append(response.url))
    page.clock.install()  # runs in real time; the panel's refresh below comes at once
    page.goto(world.admin)
    expect(page.locator("#sign-in")).to_be_visible()
    shot(page, "admin_sign_in")
    page.fill("#token", "bla_" + "x" * 43)
    page.click("#sign-in-btn")
    expect(page.locator("#sign-in-note")).to_have_text(re.compile(r"\(401\)"))
    expect(page.locator("#sign-in-note")).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#console")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('baolife.admin.token')") is None

    # The operator: the console, the token in this tab's sessionStorage only.
    page.fill("#token", world.operator)
    page.click("#sign-in-btn")
    expect(page.locator("#who")).to_have_text(f"{OPERATOR} · operator")
    expect(page.locator("#viewer-note")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('baolife.admin.token')") == world.operator
    assert world.operator not in page.evaluate("JSON.stringify(localStorage)")
    assert world.operator not in page.url

    # The live panel: the connected player counted, and it refreshes by itself.
    expect(page.locator("#w-figures")).to_contain_text("Players online")
    assert number(_figure(page, "w-figures", "Players online")) >= 1
    expect(page.locator("#w-updated")).to_have_text(re.compile(r"^updated "))
    before = page.locator("#w-updated").inner_text()
    page.clock.fast_forward(WORKER_MS)
    page.wait_for_function("(t) => document.getElementById('w-updated').textContent !== t", arg=before)
    expect(page.locator("#live")).to_contain_text("online")
    shot(page, "admin_console")

    # Search and the player's page.
    online = world.online
    _open(page, online)
    expect(page.locator("#p-chips")).to_contain_text("online")
    expect(page.locator("#p-life h3")).to_have_text(re.compile(r"^Life 1 · age \d+"))
    expect(page.locator("#p-life .feed li")).not_to_have_count(0)
    expect(page.locator(OP_CONTROLS)).not_to_have_count(0)
    assert page.url.endswith(f"#player/{online.id}")

    # Export: one JSON document with the player in it, saved as a file.
    with page.expect_download() as download:
        page.click("#export-btn")
    saved = download.value
    assert saved.suggested_filename == f"baolife-player-{online.id}.json"
    document = json.loads(Path(saved.path()).read_text("utf-8"))
    assert online.name in json.dumps(document)
    expect(page.locator("#export-note")).to_have_text(re.compile(r"^Downloaded \("))

    # A ban with an end time in the past is refused before it is sent.
    page.fill("#ban-reason", EVIL_REASON)
    page.fill("#ban-until", "2001-01-01T00:00")
    page.click("#ban-btn")
    expect(page.locator("#ban-note")).to_have_text(re.compile(r"has passed"))
    # For good: the session ends, the reason shows as text (no element made of it).
    page.fill("#ban-until", "")
    page.click("#ban-btn")
    expect(page.locator("#ban-note")).to_have_text("Banned for good.")
    expect(page.locator("#p-ban")).to_contain_text(EVIL_REASON)
    expect(page.locator("#p-chips")).to_contain_text("banned")
    expect(page.locator(f'#results li[data-player="{online.id}"]')).to_contain_text("banned")  # the list follows
    assert page.locator("#console img, #console b").count() == 0
    assert page.evaluate("window.__pwned") is None
    _wire(_ended, online)
    (answer,) = _wire(_login, world.ws_port, online.token)
    assert answer["op"] == "error" and answer["code"] == "banned", answer
    assert answer["reason"] == EVIL_REASON and answer.get("until") is None  # no end: null or left out
    expect(page.locator("#audit-rows")).to_contain_text(OPERATOR)
    expect(page.locator("#audit-rows tr", has_text="ban").first).to_contain_text(str(online.id))
    shot(page, "admin_banned")

    # Unban: the player logs in again.
    expect(page.locator("#unban-btn")).to_be_enabled()
    page.click("#unban-btn")
    expect(page.locator("#ban-note")).to_have_text("Unbanned.")
    expect(page.locator("#p-ban")).to_be_hidden()
    (answer,) = _wire(_login, world.ws_port, online.token)
    assert answer["op"] == "welcome", answer

    # Mute NPC talk and allow it again.
    page.click("#mute-btn")
    expect(page.locator("#mute-note")).to_have_text("NPC talk muted.")
    expect(page.locator("#p-chips")).to_contain_text("NPC talk muted")
    expect(page.locator("#mute-btn")).to_have_text("Unmute NPC talk")
    page.click("#mute-btn")
    expect(page.locator("#mute-note")).to_have_text("NPC talk allowed again.")
    expect(page.locator("#p-chips")).not_to_contain_text("muted")

    # Kick: a reason is asked for, then the session ends with it.
    kicked = world.kicked
    _open(page, kicked)
    page.click("#kick-btn")
    expect(page.locator("#kick-note")).to_have_text("Give a reason: the player sees it.")
    assert not kicked.ended.is_set()
    page.fill("#kick-reason", "Time for a break")
    page.click("#kick-btn")
    expect(page.locator("#kick-note")).to_have_text("Kicked: the session was ended.")
    _wire(_ended, kicked)
    assert kicked.bye is not None and kicked.bye["reason"] == "kicked", kicked.bye
    assert kicked.bye.get("message") == "Time for a break", kicked.bye
    page.click("#p-refresh")
    expect(page.locator("#p-chips")).to_contain_text("offline")

    # Another operator erases the player on the page: the next action here
    # gets the server's refusal right under the control that sent it.
    _open(page, world.double)
    gone = _fetch(page, "POST", f"players/{world.double.id}/erase", {"confirm": world.double.id})
    assert gone["status"] == 200, gone
    page.fill("#ban-reason", "too late")
    page.click("#ban-btn")
    expect(page.locator("#ban-note")).to_have_text(re.compile(r"\((404|409)\)"))
    expect(page.locator("#ban-note")).to_have_class(re.compile(r"\berror\b"))

    # Erase from the console: the button waits for the exact id typed.
    eraser = world.eraser
    _open(page, eraser)
    expect(page.locator("#erase-btn")).to_be_disabled()
    page.fill("#erase-confirm", str(eraser.id) + "0")
    expect(page.locator("#erase-btn")).to_be_disabled()
    page.fill("#erase-confirm", str(eraser.id))
    expect(page.locator("#erase-btn")).to_be_enabled()
    page.click("#erase-btn")
    expect(page.locator("#p-note")).to_have_text(re.compile(rf"^Player {eraser.id} was erased"))
    expect(page.locator("#p-actions")).to_be_hidden()
    expect(page.locator(f'#results li[data-player="{eraser.id}"]')).to_have_count(0)  # the search no longer finds them
    (answer,) = _wire(_login, world.ws_port, eraser.token)
    assert answer["op"] == "error", answer  # the token stopped working at once
    page.click("#p-refresh")
    expect(page.locator("#p-note")).to_have_text(re.compile(r"\((404|409)\)"))

    # Announce: shown on the console, and sent to a player who logs in.
    expect(page.locator("#notice-now")).to_have_text("No announcement now.")
    page.fill("#notice-text", NOTICE)
    expect(page.locator("#notice-count")).to_have_text(f"{len(NOTICE)}/280")
    page.click("#notice-btn")
    expect(page.locator("#notice-note")).to_have_text(re.compile(r"^Announced to every player until "))
    expect(page.locator("#notice-now")).to_contain_text(NOTICE)
    welcome, notice = _wire(_login, world.ws_port, world.reader.token, "notice")
    assert welcome["op"] == "welcome" and notice["text"] == NOTICE, notice
    expect(page.locator("#notice-clear")).to_be_enabled()

    # The day's NPC budget, changed live.
    page.fill("#budget", "2.5")
    page.click("#budget-btn")
    expect(page.locator("#llm-note")).to_have_text("Today's budget is now 2.50.")
    expect(page.locator("#llm-figures")).to_contain_text("2.50")
    expect(page.locator("#audit-rows")).to_contain_text("budget")
    shot(page, "admin_actions")

    # Drain this worker and take it back: the panel says which.
    page.click("#drain-btn")
    expect(page.locator("#drain-note")).to_have_text(re.compile(r"^Draining"))
    expect(page.locator("#w-figures")).to_contain_text("draining")
    expect(page.locator("#drain-btn")).to_be_disabled()
    page.click("#undrain-btn")
    expect(page.locator("#drain-note")).to_have_text("Taking players again.")
    expect(page.locator("#w-figures")).to_contain_text("ready")
    page.emulate_media(color_scheme="dark")
    _open(page, online)
    shot(page, "admin_dark")

    # All of it within the page's Content-Security-Policy, from the console's own versioned files.
    assert page.evaluate("window.__violations") == []
    scripts = [url for url in loaded if url.endswith(".js")]
    assert scripts and all(re.search(r"/admin/v/[0-9a-f]+/[a-z-]+\.js$", url) for url in scripts), scripts
    styles = sorted(url.rsplit("/", 1)[1] for url in loaded if re.search(r"/admin/v/[0-9a-f]+/[a-z-]+\.css$", url))
    # The game's colours and base rules, served as the console's own files.
    assert styles == ["base.css", "style.css", "theme.css"], loaded
    # Its dark mode is the game's theme (the page is in dark mode here).
    colours = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--bg')")
    assert colours.strip() == "#181a1b"

    # Sign out: the token and everything shown are gone.
    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#console")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('baolife.admin.token')") is None
    assert online.name not in page.locator("body").inner_text()
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()


@pytest.mark.parametrize("viewport", SIZES)
async def test_an_operator_at_the_console(
    chromium: str, admin_world: Callable[..., Any], tmp_path: Path, viewport: dict[str, int]
) -> None:
    await admin_world(tmp_path, "operator", _operator, viewport)


# ------------------------------------------------------------------ a viewer


def _viewer(world: World, page: Page) -> None:
    _sign_in(page, world, world.viewer, f"{VIEWER} · viewer")
    expect(page.locator("#viewer-note")).to_be_visible()
    expect(page.locator("#p-actions .viewer-only")).to_be_hidden()  # not before a player is open
    online = world.online
    page.goto(world.admin + f"#player/{online.id}")
    expect(page.locator("#p-name")).to_have_text(online.name)
    expect(page.locator("#p-life h3")).to_be_visible()
    expect(page.locator("#w-figures")).to_contain_text("Players online")
    expect(page.locator("#audit-rows tr")).not_to_have_count(0)  # a viewer reads the log
    # Every action is there and disabled.
    for button in ACTION_BUTTONS:
        expect(page.locator(f"#{button}")).to_be_disabled()
    expect(page.locator(OP_CONTROLS)).to_have_count(0)
    expect(page.locator("#p-actions .viewer-only")).to_be_visible()
    shot(page, "admin_viewer")

    # Forcing it anyway: 403 from the server, shown next to the control.
    forced = _fetch(page, "POST", f"players/{online.id}/ban", {"reason": "viewer was here", "until": None})
    assert forced["status"] == 403 and forced["body"]["error"] == "forbidden", forced
    page.evaluate(
        """() => { for (const id of ["ban-reason", "ban-btn"]) document.getElementById(id).disabled = false;
                   document.getElementById("ban-reason").value = "viewer was here"; }"""
    )
    page.click("#ban-btn")
    expect(page.locator("#ban-note")).to_have_text(re.compile(r"^Not allowed \(403\)"))
    forced = _fetch(page, "POST", "notice", {"text": "viewer notice", "until": 4102444800})
    assert forced["status"] == 403, forced
    # Nothing changed: not banned, still online, no announcement.
    seen = _fetch(page, "GET", f"players/{online.id}")
    assert seen["status"] == 200 and seen["body"]["banned"] is None and seen["body"]["online"] is True, seen
    assert _fetch(page, "GET", "notice")["body"]["notice"] is None
    assert not online.ended.is_set()
    assert page.evaluate("window.__violations") == []


@pytest.mark.parametrize("viewport", SIZES)
async def test_a_viewer_sees_the_actions_disabled_and_is_refused(
    chromium: str, admin_world: Callable[..., Any], tmp_path: Path, viewport: dict[str, int]
) -> None:
    await admin_world(tmp_path, "viewer", _viewer, viewport)


# ------------------------------------------------------------------ the rate limit


def _rate_limited(world: World, page: Page) -> None:
    _sign_in(page, world, world.operator, f"{OPERATOR} · operator")
    # Someone with the page open spends the address's whole bucket...
    statuses = page.evaluate(
        """async () => { const out = [];
             for (let i = 0; i < 40; i++) out.push((await fetch("/admin/api/whoami")).status);
             return out; }"""
    )
    assert statuses[-1] == 429, statuses
    # ...and the operator's next search says so where it was asked, with the wait.
    page.fill("#q", world.online.name)
    page.click("#search-btn")
    expect(page.locator("#search-note")).to_have_text(re.compile(r"^Too many requests \(429\): try again in \d+ s\.$"))
    expect(page.locator("#search-note")).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#search-btn")).to_be_enabled()


async def test_a_rate_limited_console_says_how_long_to_wait(
    chromium: str, admin_world: Callable[..., Any], tmp_path: Path
) -> None:
    await admin_world(tmp_path, "rate", _rate_limited, DESKTOP, admin_rate=0.1, admin_burst=20)


# ------------------------------------------------------------------ the player's side


def _player_side(world: World, page: Page) -> None:
    # A player in the game's page; an operator in another tab.
    page.goto(world.server.url)
    page.fill("#name", "Pia Player")
    page.click("#register-btn")
    conn = page.locator("#conn")
    expect(conn).to_have_text("Online")
    pid = page.locator("#player-id").text_content() or ""
    assert pid.isdigit()
    token = page.evaluate("localStorage.getItem('baolife.token')")
    expect(page.locator("#notice")).to_be_hidden()
    console = page.context.new_page()
    _sign_in(console, world, world.operator, f"{OPERATOR} · operator")

    # An announcement reaches the connected page at once, as text, and goes when withdrawn.
    console.fill("#notice-text", NOTICE)
    console.click("#notice-btn")
    expect(console.locator("#notice-note")).to_have_text(re.compile(r"^Announced"))
    expect(page.locator("#notice-text")).to_have_text(NOTICE)
    expect(page.locator("#notice")).to_be_visible()
    assert page.locator("#notice b").count() == 0
    shot(page, "game_notice")
    console.click("#notice-clear")
    expect(console.locator("#notice-note")).to_have_text(re.compile(r"^Withdrawn"))
    expect(page.locator("#notice")).to_be_hidden()
    console.fill("#notice-text", NOTICE)
    console.click("#notice-btn")
    expect(page.locator("#notice")).to_be_visible()

    # A kick: the page says who ended it and why, and waits to be asked.
    console.goto(world.admin + f"#player/{pid}")
    expect(console.locator("#p-name")).to_have_text("Pia Player")
    console.fill("#kick-reason", "Time for a break")
    console.click("#kick-btn")
    expect(console.locator("#kick-note")).to_have_text("Kicked: the session was ended.")
    expect(conn).to_have_text("An operator ended this session: Time for a break")
    expect(conn).to_have_attribute("data-state", "offline")
    expect(page.locator("#retry-now")).to_have_text("Reconnect")
    shot(page, "game_kicked")

    # Banned meanwhile: reconnecting is refused with the reason on the start
    # screen; the login key stays for when the ban ends.
    console.fill("#ban-reason", "Abuse of NPC talk")
    console.click("#ban-btn")
    expect(console.locator("#ban-note")).to_have_text("Banned for good.")
    page.click("#retry-now")
    expect(page.locator("#start")).to_be_visible()
    expect(page.locator("#continue-note")).to_have_text("This player is banned: Abuse of NPC talk")
    expect(page.locator("#name")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("#continue")).to_be_visible()
    assert page.evaluate("localStorage.getItem('baolife.token')") == token
    shot(page, "game_banned")

    # Unbanned: the same life again, and the announcement comes with the login.
    console.click("#unban-btn")
    expect(console.locator("#ban-note")).to_have_text("Unbanned.")
    page.click("#continue-btn")
    expect(conn).to_have_text("Online")
    expect(page.locator("#player-id")).to_have_text(pid)
    expect(page.locator("#notice-text")).to_have_text(NOTICE)
    console.close()


@pytest.mark.parametrize("viewport", SIZES)
async def test_a_player_sees_the_operators_at_work(
    chromium: str, admin_world: Callable[..., Any], tmp_path: Path, viewport: dict[str, int]
) -> None:
    await admin_world(tmp_path, "player_side", _player_side, viewport)


# ------------------------------------------------------------------ the world


@pytest.fixture
def admin_world(chromium: str, browser_settings: Settings, calm_content: Content) -> Callable[..., Any]:
    """``run(tmp_path, name, scenario, viewport, **settings)``: a server with
    an operator's and a viewer's token and five players (two connected),
    ``scenario(world, page)`` in the browser within the budget, then
    everything stopped."""
    operator, viewer = new_token(), new_token()
    settings = browser_settings.replace(
        admin_tokens=f"{token_line(OPERATOR, 'operator', operator)},{token_line(VIEWER, 'viewer', viewer)}",
        # The scenario is quicker than a person: room for it under the rate limit.
        admin_rate=100.0,
        admin_burst=1000,
    )

    async def run(
        tmp_path: Path, name: str, scenario: Callable[[World, Page], None], viewport: dict[str, int], **changes: Any
    ) -> None:
        label = f"admin_{name}-{viewport['width']}"
        with trio.fail_after(BUDGET + SLACK):
            async with _world(settings.replace(**changes), calm_content, operator, viewer) as world:
                await in_browser(chromium, tmp_path, BUDGET, label, partial(scenario, world), viewport)

    return run


@asynccontextmanager
async def _world(settings: Settings, content: Content, operator: str, viewer: str) -> AsyncIterator[World]:
    async with trio.open_nursery() as nursery:
        server = Server(nursery, settings, content)
        app = await server.start()
        try:
            assert app.ws_port is not None
            online = await nursery.start(_stay_online, app.ws_port, "Mai Tester")
            kicked = await nursery.start(_stay_online, app.ws_port, "Kim Kicked")
            others = [await _register(app.ws_port, name) for name in ("Dan Double", "Erin Erase", "Nora Reader")]
            yield World(server, operator, viewer, online, kicked, *others)
        finally:
            await server.stop()  # closes the connected player too: its task ends
