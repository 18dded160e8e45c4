"""A login the server answers ``busy`` (a restarted worker's crowd all
logging in at once): the page closes that socket at once and comes back
after its backoff, instead of sitting on a connection that will never play
until the server hangs up on it."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest
from browser import PHONE, Server, shot
from playwright.sync_api import Page, WebSocketRoute, expect
from test_web_client import _play, _register

from baolife.config import Settings
from baolife.content.schema import Content

pytestmark = pytest.mark.browser

BUDGET = 30


def _busy_then_back(server: Server, page: Page) -> None:
    _register(page, server, "Bea Busy")

    # From now on the page's sockets meet a stand-in that answers the first
    # login busy and lets the next ones through to the real server.
    seen: list[tuple[str, float]] = []

    def stand_in(ws: WebSocketRoute) -> None:
        n = sum(1 for kind, _ in seen if kind == "open")
        seen.append(("open", time.monotonic()))
        if n > 0:
            ws.connect_to_server()
            return

        def on_message(message: str | bytes) -> None:
            msg = orjson.loads(message)
            seen.append((msg["type"], time.monotonic()))
            busy = {"op": "error", "ref": msg["id"], "code": "busy", "message": "Too many logins right now"}
            ws.send(orjson.dumps({"type": "frame", "seq": 0, "tick": 1, "ops": [busy]}).decode())

        ws.on_message(on_message)
        ws.on_close(lambda code, reason: seen.append(("closed", time.monotonic())))

    page.route_web_socket(re.compile(r"/ws"), stand_in)
    page.reload()
    expect(page.locator("#conn")).to_contain_text("busy", timeout=5000)
    shot(page, "login_busy")
    expect(page.locator("#conn")).to_have_text("Online", timeout=10_000)
    kinds = [kind for kind, _ in seen]
    assert kinds[:3] == ["open", "login", "closed"] or kinds[:3] == ["open", "resume", "closed"], kinds
    answered, closed = seen[1][1], seen[2][1]
    assert closed - answered < 1.0, "the page sat on a socket that could not play"
    assert kinds.count("open") == 2, kinds  # one retry, after the backoff, and it plays
    expect(page.locator("#me-name")).to_have_text("Bea Busy")


async def test_a_busy_login_is_retried_on_a_new_socket_after_the_backoff(
    chromium: str, browser_settings: Settings, calm_content: Content, tmp_path: Path
) -> None:
    await _play(chromium, browser_settings, calm_content, tmp_path, "busy", _busy_then_back, PHONE, BUDGET)
