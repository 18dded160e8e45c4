"""Is this process alive, should it get new players, and the HTTP routes
that say so.

*Healthy* (``/healthz``): the tick loop advanced recently; a stalled loop is
the one fault a restart cures. *Ready* (``/readyz``): healthy, not draining,
the store takes writes, saves go through, there is room to load players and
connections are under their limit; a load balancer sends new players only to
ready processes. The store is probed with a small write every
:data:`STORE_CHECK_EVERY` seconds (:meth:`Health.watch_store`), because a
read passes on a full disk or a locked table where saves and logins fail.

:func:`routes` gives the HTTP listener its ``/healthz``, ``/readyz`` and
``/metrics``; :func:`client_config` is the web client's ``/config.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import structlog
import trio

from .config import Settings
from .db.store import Store, StoreError
from .net.http import Route
from .net.listener import WsListener
from .players import Directory, Saver
from .tick.loop import TickLoop

__all__ = ["STORE_CHECK_EVERY", "Health", "client_config", "routes"]

log = structlog.get_logger("baolife.app")

# The store probe (a small write) runs this often, so readiness clears
# within about a second of the store taking writes again.
STORE_CHECK_EVERY = 1.0


class Health:
    """Liveness and readiness of one server process; see the module docstring.

    Built once the store is open and checked (so ``store_ok`` starts True);
    the app sets :attr:`draining` when its graceful shutdown starts and
    calls :meth:`tick_seen` after every tick.
    """

    def __init__(
        self, settings: Settings, *, store: Store, loop: TickLoop, directory: Directory, saver: Saver, ws: WsListener
    ) -> None:
        self.settings = settings
        self.store = store
        self.loop = loop
        self.directory = directory
        self.saver = saver
        self.ws = ws
        self.draining = False
        self.store_ok = True
        self.store_error: str | None = None
        self.last_tick_at = 0.0
        # The cluster's own reasons (lease lapsed, a bus that cannot reach
        # the workers sharing the database; baolife.cluster.ownership).
        self.cluster_problems: Callable[[], list[str]] = list

    def tick_seen(self, now: float) -> None:
        """A tick ended at ``now`` (trio's clock)."""
        self.last_tick_at = now

    def healthy(self) -> bool:
        """The tick loop advanced recently."""
        limit = self.settings.effective_health_window
        return self.loop.advanced.is_set() and trio.current_time() - self.last_tick_at < limit

    def readiness(self) -> list[str]:
        """Why this process should not get new players now (empty: ready)."""
        problems = []
        if self.draining:
            problems.append("draining")
        if not self.healthy():
            problems.append("tick loop stalled")
        if not self.store_ok:
            problems.append("store cannot take writes")
        if self.saver.failing:
            problems.append("saves failing")
        if not self.directory.has_room:
            problems.append("no room to load more players")
        if len(self.ws.sessions) >= self.settings.max_connections:
            problems.append("connection limit reached")
        problems.extend(self.cluster_problems())
        return problems

    async def watch_store(self) -> None:
        """Probe the store forever (run it in the app's nursery); when it
        takes writes again, wake the saver to flush at once rather than at
        its next probe."""
        while True:
            ok = False
            with trio.move_on_after(self.settings.store_probe_timeout) as probe:
                try:
                    await self.store.ping()
                    ok = True
                except StoreError as exc:
                    self.store_error = str(exc)
            if probe.cancelled_caught:
                self.store_error = f"the store did not answer a write within {self.settings.store_probe_timeout:g} s"
            if ok != self.store_ok:
                log.info("store_state", writable=ok, error=None if ok else self.store_error)
                if ok:
                    self.saver.wake()
            self.store_ok = ok
            await trio.sleep(STORE_CHECK_EVERY)


def routes(health: Health, render_metrics: Callable[[], bytes]) -> dict[str, Route]:
    """The HTTP listener's operational routes: ``/healthz`` (200 or 503 with
    the tick), ``/readyz`` (200 or 503 with the problems) and ``/metrics``
    (``render_metrics()``, Prometheus' text format)."""

    def healthz() -> tuple[int, str, bytes]:
        ok = health.healthy()
        body = {"ok": ok, "tick": health.loop.tick}
        return (200 if ok else 503), "application/json", orjson.dumps(body)

    def readyz() -> tuple[int, str, bytes]:
        problems = health.readiness()
        body = {"ready": not problems, "problems": problems}
        return (503 if problems else 200), "application/json", orjson.dumps(body)

    def metrics() -> tuple[int, str, bytes]:
        return 200, "text/plain; version=0.0.4; charset=utf-8", render_metrics()

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


def client_config(settings: Settings, ws_port: int | None, http_port: int | None) -> dict[str, Any]:
    """``/config.json``: the web client's only way to find the WebSocket
    (another port) and the tick rate it needs to count prompts down in
    seconds. The page's Content-Security-Policy names the same socket."""
    return {
        "protocol": 1,
        "ws_port": ws_port,
        "ws_path": "/ws",
        "ws_tls": bool(settings.tls_cert),
        "http_port": http_port,
        "tick_hz": settings.tick_hz,
        # The page pings well inside it, so a player who only watches stays.
        "idle_timeout": settings.idle_timeout,
    }
