"""The web client in headless Chromium under the Content-Security-Policy the
server sends: it loads its files from the versioned folder, reaches its
WebSocket, and the browser reports no violation of the policy."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio
from browser import Server, in_browser
from playwright.sync_api import ConsoleMessage, Page, expect

from baolife.config import Settings
from baolife.content.schema import Content

pytestmark = pytest.mark.browser

BUDGET = 30  # seconds in the browser, its start included
SLACK = 15  # for the server to start and stop around it

# Runs before the page's own scripts (injected by DevTools, so not itself
# subject to the policy): keeps every violation the page reports.
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def _within_the_policy(server: Server, version: str, page: Page) -> None:
    console: list[str] = []
    loaded: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        console.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("response", lambda response: loaded.append(response.url))
    page.add_init_script(WATCH_VIOLATIONS)
    page.goto(server.url)

    # The start card is shown by the script: the script ran.
    expect(page.locator("#start")).to_be_visible()
    page.fill("#name", "Polly Policy")
    page.click("#register-btn")
    expect(page.locator("#conn")).to_have_text("Online")  # connect-src let the WebSocket through
    expect(page.locator("#me-name")).to_have_text("Polly Policy")

    assert page.evaluate("window.__violations") == []
    refused = [line for line in console if "Content Security Policy" in line or "Refused to" in line]
    assert not refused, refused
    assert any(f"/v/{version}/" in url and url.endswith(".js") for url in loaded), loaded
    sheets = page.evaluate("[...document.styleSheets].map((sheet) => sheet.href)")
    assert any(f"/v/{version}/" in (href or "") for href in sheets), sheets

    # The watch itself works: an inline script is a violation it reports.
    page.evaluate("document.body.append(Object.assign(document.createElement('script'), {textContent: '1'}))")
    page.wait_for_function("window.__violations.length > 0")
    assert "script-src" in page.evaluate("window.__violations[0]")


async def test_the_page_runs_within_its_content_security_policy(
    chromium: str, browser_settings: Settings, calm_content: Content, tmp_path: Path
) -> None:
    with trio.fail_after(BUDGET + SLACK):
        async with trio.open_nursery() as nursery:
            server = Server(nursery, browser_settings, calm_content)
            app = await server.start()
            try:
                scenario = partial(_within_the_policy, server, app.web.files.version)
                await in_browser(chromium, tmp_path, BUDGET, "csp", scenario)
            finally:
                await server.stop()
