"""Headless Chromium for the web client tests, and a server that can be
restarted under it.

The test owns the browser process: :func:`chromium_process` starts Debian's
Chromium with a fresh profile and stops it on the way out, whatever
happened. Playwright's sync API drives it over CDP in a worker thread
(``trio.to_thread``), while the server runs in the test's Trio loop; the
scenario calls back into Trio with ``trio.from_thread.run``. A thread
cannot be cancelled, so :func:`in_browser` enforces its budget by stopping
the browser, which fails the thread's current step at once.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import trio
from playwright.sync_api import Page, expect, sync_playwright

from baolife.app import App
from baolife.config import Settings
from baolife.content.schema import Content

# Flags that work on a closed network in a container: no sandbox (root), no
# GPU, nothing that phones home, DevTools on loopback only.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
STEP_MS = 10_000
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0

Scenario = Callable[[Page], None]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Screenshots for a person to look at: BAOLIFE_SHOTS=/tmp/shots pytest ...
SHOTS = os.environ.get("BAOLIFE_SHOTS", "")


def shot(page: Page, name: str) -> None:
    """A screenshot of the viewport to $BAOLIFE_SHOTS/<name>-<width>.png,
    when that variable names a folder (nothing otherwise)."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    width = (page.viewport_size or DESKTOP)["width"]
    page.screenshot(path=str(Path(SHOTS) / f"{name}-{width}.png"))


class Chromium:
    """A running Chromium: its process and its DevTools endpoint."""

    def __init__(self, process: trio.Process, cdp_url: str) -> None:
        self.process = process
        self.cdp_url = cdp_url

    def stop_soon(self) -> None:
        """Ask the browser to quit (SIGTERM); connections to it break."""
        if self.process.returncode is None:
            with suppress(ProcessLookupError):
                self.process.terminate()


async def _devtools_url(stderr: trio.abc.ReceiveStream) -> str:
    seen = b""
    while True:
        chunk = await stderr.receive_some(4096)
        if not chunk:
            raise RuntimeError(f"Chromium exited before DevTools listened: {seen[-2000:].decode(errors='replace')}")
        seen += chunk
        found = re.search(rb"DevTools listening on (ws://\S+)", seen)
        if found:
            return found.group(1).decode()


async def _drain(stderr: trio.abc.ReceiveStream) -> None:
    # Chromium logs to stderr; a full pipe would stall it.
    while await stderr.receive_some(65536):
        pass


async def _stop(process: trio.Process) -> None:
    if process.returncode is None:
        with suppress(ProcessLookupError):
            process.terminate()
        with trio.move_on_after(STOP_TIMEOUT):
            await process.wait()
    if process.returncode is None:
        # Not reaped yet, so its process group id is still ours to kill.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


@asynccontextmanager
async def chromium_process(executable: str, profile: Path) -> AsyncIterator[Chromium]:
    """Headless Chromium with a fresh profile in ``profile``, in its own
    process group; stopped (SIGTERM, then SIGKILL of the group) on exit."""
    await trio.Path(profile).mkdir(parents=True, exist_ok=True)
    process = await trio.lowlevel.open_process(
        [executable, *CHROMIUM_ARGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        with trio.fail_after(START_TIMEOUT):
            url = await _devtools_url(process.stderr)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, process.stderr)
            try:
                yield Chromium(process, url)
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process)


def _run_page(
    cdp_url: Callable[[], str | None], shots: Path, name: str, scenario: Scenario, viewport: dict[str, int]
) -> None:
    # Once imported (by the MySQL store and its tests), trio-asyncio makes every
    # new asyncio loop in the process its own SyncTrioEventLoop, on which
    # playwright's loop in this worker thread cannot run. A policy set in this
    # thread gives it a plain asyncio loop again.
    asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    try:
        _drive_page(cdp_url, shots, name, scenario, viewport)
    finally:
        asyncio.set_event_loop_policy(None)


def _drive_page(
    cdp_url: Callable[[], str | None], shots: Path, name: str, scenario: Scenario, viewport: dict[str, int]
) -> None:
    errors: list[str] = []
    with sync_playwright() as pw:
        url = cdp_url()  # waits for Chromium, which started meanwhile
        if url is None:
            return  # Chromium did not start; in_browser raises why
        browser = pw.chromium.connect_over_cdp(url, timeout=STEP_MS)
        try:
            phone = viewport["width"] < DESKTOP["width"]
            context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)  # type: ignore[arg-type]
            page = context.new_page()
            page.set_default_timeout(STEP_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect.set_options(timeout=STEP_MS)
            try:
                scenario(page)
            except BaseException:
                with suppress(Exception):  # the screenshot is a clue, not the error
                    page.screenshot(path=str(shots / f"{name}.png"), full_page=True, timeout=5_000)
                raise
            assert not errors, f"the page threw: {errors}"
        finally:
            browser.close()  # disconnects; the process is stopped by chromium_process


async def in_browser(
    executable: str, workdir: Path, budget: float, name: str, scenario: Scenario, viewport: dict[str, int] | None = None
) -> None:
    """Run ``scenario(page)`` on a fresh page (of ``viewport`` size, a phone's
    when narrower than :data:`DESKTOP`) of a Chromium started and
    stopped here. Uncaught errors of the page's scripts fail it; on failure
    a screenshot goes to ``workdir/<name>.png``.

    Playwright's driver (a Node process) starts in the worker thread while
    Chromium starts here: each takes about a second, and neither needs the other.

    Raises:
        trio.TooSlowError: the scenario ran past ``budget`` seconds (the
            browser was stopped to end it).
    """
    late = False
    failure: BaseException | None = None
    urls: queue.Queue[str | None] = queue.Queue()
    driven = trio.Event()

    def cdp_url() -> str | None:
        return urls.get(timeout=START_TIMEOUT + STOP_TIMEOUT)

    async def drive() -> None:
        nonlocal failure
        try:
            await trio.to_thread.run_sync(_run_page, cdp_url, workdir, name, scenario, viewport or DESKTOP)
        except Exception as exc:
            failure = exc
        finally:
            driven.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drive)
        try:
            async with chromium_process(executable, workdir / f"{name}-profile") as browser:
                urls.put(browser.cdp_url)

                async def watchdog() -> None:
                    nonlocal late
                    await trio.sleep(budget)
                    late = True
                    browser.stop_soon()

                async with trio.open_nursery() as guard:
                    guard.start_soon(watchdog)
                    await driven.wait()
                    guard.cancel_scope.cancel()
        finally:
            urls.put(None)  # Chromium never came up: the driver stops waiting for it
    if late:
        raise trio.TooSlowError(f"the browser scenario {name!r} ran past its {budget} s budget") from failure
    if failure is not None:
        raise failure


def number(text: str) -> int:
    """The first integer in ``text``."""
    found = re.search(r"-?\d+", text)
    assert found, f"no number in {text!r}"
    return int(found.group())


def age_days(text: str, year_days: int) -> int:
    """The age in days the page shows as "N years, M days old"."""
    found = re.search(r"(\d+) years?, (\d+) days?", text)
    assert found, f"no age in {text!r}"
    return int(found.group(1)) * year_days + int(found.group(2))


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
