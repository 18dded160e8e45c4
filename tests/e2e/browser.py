"""Headless Chromium for the web client tests, driven by Playwright, and a
server that can be restarted under it.

Playwright's sync API runs in a worker thread (``trio.to_thread``) while
the server runs in the test's Trio loop; the scenario calls back into Trio
with ``trio.from_thread.run``. Every step waits for a condition with its
own timeout, so the thread always ends, and the browser is closed on the
way out whatever happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import trio
from playwright.sync_api import Page, expect, sync_playwright

from baolife.app import App
from baolife.config import Settings
from baolife.content.schema import Content

# Flags that work on a closed network in a container: no sandbox (root), no
# GPU, nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
STEP_MS = 10_000


@contextmanager
def open_page(chromium: str, shots: Path, name: str) -> Iterator[Page]:
    """A fresh page in a fresh headless Chromium profile. The browser and
    Playwright's driver are stopped on exit; on an exception a screenshot
    goes to ``shots/<name>.png``. Uncaught errors of the page's scripts
    fail the test."""
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(STEP_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect.set_options(timeout=STEP_MS)
            try:
                yield page
            except BaseException:
                with suppress(Exception):  # the screenshot is a clue, not the error
                    page.screenshot(path=str(shots / f"{name}.png"), full_page=True, timeout=5_000)
                raise
            assert not errors, f"the page threw: {errors}"
        finally:
            browser.close()


def number(text: str) -> int:
    """The first integer in ``text``."""
    found = re.search(r"-?\d+", text)
    assert found, f"no number in {text!r}"
    return int(found.group())


class Server:
    """One BaoLife app in a test's nursery that can be stopped and started
    again on the same ports with the same database, as after a restart."""

    def __init__(self, nursery: trio.Nursery, settings: Settings, content: Content) -> None:
        self.nursery = nursery
        self.settings = settings
        self.content = content
        self.app: App | None = None
        self._done = trio.Event()

    @property
    def url(self) -> str:
        assert self.app is not None
        return f"http://127.0.0.1:{self.app.http_port}/"

    async def start(self) -> App:
        app = App(self.settings, content=self.content)
        done = trio.Event()

        async def run(*, task_status: trio.TaskStatus[App]) -> None:
            try:
                await app.run(task_status=task_status)
            finally:
                done.set()

        await self.nursery.start(run)
        self.app, self._done = app, done
        # A restart must come back where the page expects it.
        self.settings = self.settings.replace(
            ws_bind=("127.0.0.1", app.ws_port), http_bind=("127.0.0.1", app.http_port)
        )
        return app

    async def stop(self) -> None:
        """Graceful shutdown; asserts that everything was saved."""
        app = self.app
        if app is None:
            return
        self.app = None
        app.request_shutdown()
        await self._done.wait()
        assert app.exit_code == 0, "the server lost unsaved players on shutdown"
