"""Builds the nursery tree of DESIGN.md from a config, runs it, drains it.

::

    App.run
    └── store (SQLite or MySQL pool), migrated
        └── app nursery
            ├── signals: SIGTERM/SIGINT start a graceful shutdown
            ├── saver: write-behind flushes
            ├── ai workers
            ├── tick loop
            ├── store watch: readiness
            ├── websocket listener (+ one nursery of connections)
            └── http listener: /healthz /readyz /metrics, the web client and
                its /config.json (where the WebSocket is, the tick rate)

Graceful shutdown, inside ``shutdown_timeout``: stop accepting, stop the
tick loop at a tick boundary (it queues ``bye`` shutdown and close 1001 to
every connection), let the connections close, flush every dirty player,
close the store. The exit status is 0 when everything was saved.

Under systemd (``Type=notify``) the app sends ``READY=1`` once it listens,
``WATCHDOG=1`` after ticks, ``STATUS=`` with each summary and ``STOPPING=1``
when the drain starts (:mod:`baolife.systemd`). Every log line of the app's
tasks carries the current ``tick``; connection tasks add ``session`` and
``player``.
"""

from __future__ import annotations

import gc
import random
import secrets
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import structlog
import trio
from prometheus_client.core import Metric

from . import content as content_pkg
from .ai.llm import LlmProvider
from .ai.offline import ScriptedProvider
from .ai.reply import Provider
from .ai.service import NpcService
from .config import ConfigError, Settings
from .content.schema import Content
from .db.saver import Saver
from .db.store import Store, StoreError, open_store
from .net.accept import fit_descriptors
from .net.auth import Auth
from .net.http import HttpListener, Route
from .net.listener import WsListener
from .net.webfiles import WebFiles, WebSite
from .obs import Deferred, LogWriter, Metrics, TimedStore, counter, gauge
from .players import Directory
from .systemd import Notifier
from .tick.engine import World
from .tick.loop import Inbox, Kick, TickLoop

__all__ = ["App"]

log = structlog.get_logger("baolife.app")

WEB_DIR = Path(__file__).parent / "web"

# Cyclic GC thresholds for the server process. With the default (700, 10, 10)
# the ops and frames of a big tick outlive several young collections, get
# promoted, and trigger full collections over every loaded player: 250 ms
# pauses at 10,000 online players. A young threshold of 10,000 lets a tick's
# garbage die young (scripts/bench_tick: p99 per tick 114 ms -> 18 ms at 10,000
# players). Player state is acyclic, so reference counting frees it anyway.
# The middle threshold is 100, not 20: every connection's reader is blocked
# between messages, and what it holds while blocked (a few coroutines, a
# waiter) lives seconds, so it is promoted; each middle pass walks all of it
# (150 ms at 14,500 connections). A fifth as many passes halved the tick
# overruns under the load test (baolife_gc_pause_seconds measures them).
GC_THRESHOLDS = (10_000, 100, 10)
# The store probe (a small write) runs this often, so readiness clears
# within about a second of the store taking writes again.
STORE_CHECK_EVERY = 1.0

# Metrics read from fields that a component's statistics() may have: the
# store's pool (MySQL) and the AI layer's cache, breaker and budgets are
# built in parallel, so each family appears once its field exists.
# (field, metric name, kind, help); docs/OPERATIONS.md lists them.
_STORE_OPTIONAL = (
    ("pool_size", "baolife_store_pool_size", "gauge", "Connections the store pool may open (db_pool)"),
    ("pool_in_use", "baolife_store_pool_in_use", "gauge", "Store connections lent out now"),
    ("pool_waiting", "baolife_store_pool_waiting", "gauge", "Store calls waiting for a connection"),
    ("pool_acquires", "baolife_store_pool_acquires", "counter", "Connections taken from the pool"),
    ("pool_wait_seconds", "baolife_store_pool_wait_seconds", "counter", "Seconds spent waiting for a connection"),
    ("pool_open", "baolife_store_pool_open", "gauge", "Store connections open: lent, idle or being opened"),
    ("timeouts", "baolife_store_timeouts", "counter", "Store calls that ran out of their own time limit"),
)
_AI_OPTIONAL = (
    ("calls", "baolife_ai_calls", "counter:outcome", "Upstream AI calls, by outcome"),
    ("cache_hits", "baolife_ai_cache_hits", "counter", "NPC replies served from the response cache"),
    ("cache_misses", "baolife_ai_cache_misses", "counter", "NPC replies not in the response cache"),
    ("coalesced", "baolife_ai_coalesced", "counter", "NPC jobs that joined an identical call in flight"),
    ("budget_refusals", "baolife_ai_budget_refusals", "counter:budget", "Calls not made: a budget was spent"),
    ("breaker_open", "baolife_ai_breaker_open", "gauge", "1 while the circuit breaker stops upstream calls"),
    ("spend_today", "baolife_ai_spend_today", "gauge", "Upstream spend so far this UTC day"),
    ("daily_budget", "baolife_ai_daily_budget", "gauge", "Upstream spend allowed per UTC day"),
    ("tokens", "baolife_ai_tokens", "counter:direction", "Upstream tokens, by direction (in, out)"),
    ("retries", "baolife_ai_retries", "counter", "Upstream calls that were retries"),
    ("cache_entries", "baolife_ai_cache_entries", "gauge", "Replies in the response cache"),
    ("cache_capacity", "baolife_ai_cache_capacity", "gauge", "Response cache size (ai_cache_size)"),
    ("flights", "baolife_ai_flights", "gauge", "Upstream requests in flight after single-flight"),
    ("breaker_opens", "baolife_ai_breaker_opens", "counter", "Times the circuit breaker opened"),
    ("spend_reserved", "baolife_ai_spend_reserved", "gauge", "Worst-case cost of the upstream calls in flight"),
    ("usage_pending", "baolife_ai_usage_pending", "gauge", "AI usage rows waiting to be written to the store"),
    ("usage_pending_limit", "baolife_ai_usage_pending_limit", "gauge", "Usage rows that may wait before calls stop"),
)


def _optional_families(stats: object, table: Iterable[tuple[str, str, str, str]]) -> Iterable[Metric]:
    for field, name, kind, doc in table:
        value: Any = getattr(stats, field, None)
        if value is None:
            continue
        if kind == "gauge":
            yield gauge(name, doc, float(value))
        else:
            yield counter(name, doc, value, kind.partition(":")[2])


class App:
    """One BaoLife server process. ``await app.run()`` returns the exit status.

    ``root`` is the folder a relative SQLite path is resolved against;
    ``signals`` installs the SIGTERM/SIGINT handlers (the CLI does; tests
    call :meth:`request_shutdown`). ``notifier`` talks to systemd (the CLI
    builds it from ``$NOTIFY_SOCKET``); ``log_writer`` is the log sink whose
    dropped lines are exported as a metric.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        content: Content | None = None,
        provider: Provider | None = None,
        root: str = ".",
        signals: bool = False,
        notifier: Notifier | None = None,
        log_writer: LogWriter | None = None,
    ) -> None:
        fit = fit_descriptors(settings.max_connections, settings.http_max_connections)
        if fit.lowered:
            if fit.max_connections < 1:
                raise ConfigError(
                    f"max_connections: the open-files limit {fit.limit} leaves no room for WebSocket connections "
                    f"(needs {fit.needed} for {settings.max_connections}); raise LimitNOFILE or lower the setting"
                )
            # One line, then the server runs with what fits: full is a 503, not a hang.
            log.warning(
                "descriptor_limit",
                limit=fit.limit,
                needed=fit.needed,
                max_connections=fit.max_connections,
                configured=settings.max_connections,
            )
            settings = settings.replace(max_connections=fit.max_connections)
        self.settings = settings
        self.content = content if content is not None else content_pkg.load()
        self.provider = provider
        self.root = root
        self.signals = signals
        self.notifier = notifier if notifier is not None else Notifier()
        self.log_writer = log_writer
        self.metrics = Metrics()
        self.exit_code = 0
        self.draining = False
        self.store_ok = False
        self.store_error: str | None = None
        self.ws_port: int | None = None
        self.http_port: int | None = None
        self._shutdown = trio.Event()
        self._last_tick_at = 0.0
        self._summary = [0, 0.0, 0.0, 0, 0]  # ticks, sum seconds, max seconds, frames, bytes
        self._summary_every = max(1, round(settings.summary_interval * settings.tick_hz))

    def request_shutdown(self) -> None:
        """Start the graceful shutdown (idempotent)."""
        self._shutdown.set()

    # ----------------------------------------------------------------- the tree

    async def run(self, *, task_status: trio.TaskStatus[App] = trio.TASK_STATUS_IGNORED) -> int:
        s = self.settings
        gc.set_threshold(*GC_THRESHOLDS)
        seed = s.seed if s.seed >= 0 else secrets.randbits(62)
        with self.metrics.gc_timer().installed():
            return await self._run(seed, task_status)

    async def _run(self, seed: int, task_status: trio.TaskStatus[App]) -> int:
        s = self.settings
        async with open_store(s.db_url, pool_size=s.db_pool, root=self.root) as raw_store:
            store = TimedStore(raw_store, self.metrics.observe_store)
            await self._prepare(store)
            self._build(store, random.Random(seed))  # noqa: S311 - game dice, not secrets
            # Bound before the nursery opens, so every task of the app inherits
            # it; read only when a line is written (free for the tick loop).
            structlog.contextvars.bind_contextvars(tick=Deferred(lambda: self.loop.tick))
            async with trio.open_nursery() as root:
                self._root = root
                if self.signals:
                    root.start_soon(self._watch_signals)
                await root.start(self.saver.run)
                await root.start(self.npc.run)
                await root.start(self.loop.run)
                root.start_soon(self._watch_store)
                self.ws_port = await root.start(self.ws.run)
                self.http_port = await root.start(self.http.run)
                log.info(
                    "started",
                    ws=f"{s.ws_bind[0]}:{self.ws_port}",
                    http=f"{s.http_bind[0]}:{self.http_port}",
                    store=store.kind,
                    seed=seed,
                    tick_hz=s.tick_hz,
                    day_ticks=s.day_ticks,
                    npc_provider=getattr(self.npc.provider, "name", "?"),
                )
                self.notifier.ready(self._status())
                task_status.started(self)
                await self._shutdown.wait()
                await self._drain()
                root.cancel_scope.cancel()
        log.info("stopped", exit_code=self.exit_code)
        structlog.contextvars.unbind_contextvars("tick")
        return self.exit_code

    async def _prepare(self, store: Store) -> None:
        if self.settings.db_migrate:
            applied = await store.migrate()
            if applied:
                log.info("migrated", applied=applied)
        else:
            pending = await store.pending_migrations()
            if pending:
                raise StoreError(f"schema is behind ({', '.join(pending)}); run `baolife migrate`")
        self.store = store
        self.store_ok = True

    def _build(self, store: Store, rng: random.Random) -> None:
        s = self.settings
        self.inbox = Inbox(limit=max(10000, 4 * s.max_connections))
        fallback = ScriptedProvider(self.content)
        provider = self.provider
        if provider is None:
            # With a key, the LLM answers; without one the game stays playable offline.
            provider = LlmProvider.from_settings(s, self.content, store) if s.ai_api_key else fallback
        self.npc = NpcService(
            provider,
            fallback,
            workers=s.ai_workers,
            queue=s.ai_queue,
            timeout=s.ai_timeout,
            deliver=self.inbox.put,
            observe=self.metrics.observe_npc,
        )
        self.world = World(
            self.content, day_ticks=s.day_ticks, year_days=s.year_days, rng=rng, submit_say=self.npc.submit
        )
        self.directory = Directory(
            store, lambda pid, name: self.world.rules.new_life(pid, name, 1), capacity=s.max_loaded_players
        )
        self.loop = TickLoop(
            self.world,
            self.inbox,
            tick_hz=s.tick_hz,
            mark_dirty=self.directory.mark_dirty,
            on_online=self._on_online,
            on_tick=self._on_tick,
        )
        self.saver = Saver(
            store,
            self.directory,
            interval=s.save_interval,
            batch=s.save_batch,
            on_fenced=self._on_fenced,
            observe=self.metrics.observe_flush,
        )
        self.ws = WsListener(
            s,
            self.loop,
            self.inbox,
            Auth(store, self.directory, self.inbox, register_per_ip_hour=s.register_per_ip_hour),
        )
        routes: dict[str, Route] = {"/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics}
        self.web = WebSite(WebFiles.load(WEB_DIR), self._client_config)
        self.http = HttpListener(
            s.http_bind[0], s.http_bind[1], routes, self.web, max_connections=s.http_max_connections
        )
        self.metrics.add_source(self._collect)

    async def _drain(self) -> None:
        s = self.settings
        started = trio.current_time()
        self.draining = True
        self.notifier.stopping(f"draining: {len(self.ws.sessions)} connections, {self.directory.dirty_count} unsaved")
        log.info("shutdown_started", connections=len(self.ws.sessions), dirty=self.directory.dirty_count)
        with trio.move_on_after(s.shutdown_timeout) as scope:
            self.ws.stop_accepting()
            await self.loop.stop()
            cut = await self.ws.drain(min(5.0, s.shutdown_timeout / 4))
            # During a store outage this keeps probing until the shutdown
            # timeout ends it; then the log names who was not saved.
            unsaved = await self.saver.flush_all(attempts=None)
        if scope.cancelled_caught:
            unsaved = self.directory.dirty_count
            cut = len(self.ws.sessions)
        if unsaved:
            self.exit_code = 1
            log.error("shutdown_unsaved", players=unsaved, ids=self.saver.unsaved_ids(), store_error=self.store_error)
        log.info(
            "shutdown_complete",
            seconds=round(trio.current_time() - started, 2),
            unsaved=unsaved,
            connections_cut=cut,
            saved_rows=self.saver.rows,
        )

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if not self._shutdown.is_set():
                    log.info("signal", signal=signal.Signals(signum).name)
                    self.request_shutdown()
                else:
                    log.warning("second_signal_exiting_now", signal=signal.Signals(signum).name)
                    self.exit_code = 1
                    self._root.cancel_scope.cancel()

    async def _watch_store(self) -> None:
        while True:
            ok = False
            with trio.move_on_after(3.0) as probe:
                try:
                    await self.store.ping()
                    ok = True
                except StoreError as exc:
                    self.store_error = str(exc)
            if probe.cancelled_caught:
                self.store_error = "the store did not answer a write within 3 s"
            if ok != self.store_ok:
                log.info("store_state", writable=ok, error=None if ok else self.store_error)
                if ok:
                    self.saver.wake()  # the database is back: don't sit out the saver's backoff
            self.store_ok = ok
            await trio.sleep(STORE_CHECK_EVERY)

    # ----------------------------------------------------------------- hooks

    def _on_online(self, pid: int, online: bool) -> None:
        if not online:
            self.directory.release(pid)
            if pid not in self.world.players:
                # Gone, not replaced by a new connection: its NPC reply is
                # no longer wanted, so stop paying for it.
                self.npc.cancel(pid)

    def _on_fenced(self, pid: int) -> None:
        session = self.loop.by_player.get(pid)
        if session is not None:
            self.inbox.put(Kick(session, "replaced", 4000), force=True)

    def _on_tick(self, tick: int, seconds: float, late: float, frames: int, nbytes: int) -> None:
        now = self._last_tick_at = trio.current_time()
        self.notifier.watchdog(now)
        self.metrics.observe_tick(seconds, late, frames, nbytes)
        summary = self._summary
        summary[0] += 1
        summary[1] += seconds
        summary[2] = max(summary[2], seconds)
        summary[3] += frames
        summary[4] += nbytes
        if summary[0] >= self._summary_every:
            log.info(
                "ticks",
                tick=tick,
                players=len(self.loop.by_player),
                connections=len(self.ws.sessions),
                loaded=len(self.directory),
                dirty=self.directory.dirty_count,
                tick_ms_mean=round(1000 * summary[1] / summary[0], 3),
                tick_ms_max=round(1000 * summary[2], 3),
                frames=summary[3],
                bytes=summary[4],
                overruns=self.loop.overruns,
            )
            self.notifier.status(self._status())
            self._summary = [0, 0.0, 0.0, 0, 0]

    def _status(self) -> str:
        return (
            f"{len(self.loop.by_player)} players online, {len(self.directory)} loaded, "
            f"{len(self.ws.sessions)} connections, tick {self.loop.tick}"
        )

    # ----------------------------------------------------------------- http

    def healthy(self) -> bool:
        """The tick loop advanced recently."""
        limit = max(2.0, 20.0 / self.settings.tick_hz)
        return self.loop.advanced.is_set() and trio.current_time() - self._last_tick_at < limit

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
        return problems

    def _healthz(self) -> tuple[int, str, bytes]:
        ok = self.healthy()
        body = {"ok": ok, "tick": self.loop.tick}
        return (200 if ok else 503), "application/json", orjson.dumps(body)

    def _readyz(self) -> tuple[int, str, bytes]:
        problems = self.readiness()
        body = {"ready": not problems, "problems": problems}
        return (503 if problems else 200), "application/json", orjson.dumps(body)

    def _client_config(self) -> dict[str, Any]:
        # /config.json: the web client's only way to find the WebSocket
        # (another port) and the tick rate it needs to count prompts down in
        # seconds. The page's Content-Security-Policy names the same socket.
        s = self.settings
        return {
            "protocol": 1,
            "ws_port": self.ws_port,
            "ws_path": "/ws",
            "ws_tls": bool(s.tls_cert),
            "http_port": self.http_port,
            "tick_hz": s.tick_hz,
            # The page pings well inside it, so a player who only watches stays.
            "idle_timeout": s.idle_timeout,
        }

    def _metrics(self) -> tuple[int, str, bytes]:
        return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render()

    def _collect(self) -> Iterable[Metric]:
        loop, world, d, saver, ws, npc = self.loop, self.world, self.directory, self.saver, self.ws, self.npc
        ls, ds, ws_stats, ns, wst = (
            loop.statistics(),
            d.statistics(),
            ws.statistics(),
            npc.statistics(),
            world.statistics(),
        )
        yield counter("baolife_ticks", "Ticks run", ls.tick)
        yield counter("baolife_tick_overruns", "Ticks that ended after their deadline", ls.overruns)
        yield gauge("baolife_players_online", "Players logged in on a connection", ls.online)
        yield gauge("baolife_players_loaded", "Players held in memory (LRU)", ds.loaded)
        yield gauge("baolife_players_loaded_capacity", "Players the LRU may hold (max_loaded_players)", ds.capacity)
        yield gauge("baolife_players_dirty", "Players with unsaved changes", ds.dirty)
        yield counter("baolife_player_evictions", "Players dropped from memory after being saved", ds.evictions)
        yield counter("baolife_player_loads", "Players loaded from the store", ds.loads)
        yield counter("baolife_player_loads_coalesced", "Logins that waited for a load already under way", ds.coalesced)
        yield gauge("baolife_connections", "Open WebSocket connections", ws_stats.connections)
        yield counter("baolife_connections_accepted", "WebSocket handshakes accepted", ws_stats.accepted)
        yield counter(
            "baolife_connections_refused", "WebSocket handshakes refused, by reason", ws_stats.refused, "reason"
        )
        yield counter("baolife_connections_closed", "Connections ended, by reason", ws_stats.closed, "reason")
        yield counter(
            "baolife_accept_errors",
            "accept() calls that failed for lack of descriptors or memory, by listener",
            {"ws": ws_stats.accept_errors, "http": self.http.gate.accept_errors},
            "listener",
        )
        yield counter("baolife_inbound_messages", "Inbound messages by type", ws_stats.inbound, "type")
        errors = dict(loop.error_counts)
        for code, n in world.error_counts.items():
            errors[code] = errors.get(code, 0) + n
        yield counter("baolife_errors_sent", "error ops sent, by code", errors, "code")
        yield gauge("baolife_outbound_queued_frames", "Frames waiting in connection writers", ws_stats.queued_frames)
        yield gauge("baolife_outbound_queued_frames_max", "Deepest connection queue", ws_stats.max_queued_frames)
        yield gauge("baolife_outbound_queued_bytes", "Bytes waiting in connection writers", ws_stats.queued_bytes)
        yield gauge("baolife_inbox_items", "Items waiting for the next tick", len(self.inbox))
        yield counter("baolife_player_days", "Game days lived", wst.player_days)
        yield counter("baolife_event_checks", "Random-event checks", wst.checks)
        yield counter("baolife_event_evaluations", "Event conditions evaluated", wst.evaluations)
        yield counter("baolife_events_fired", "Life events that happened", wst.events_fired)
        yield counter("baolife_deaths", "Lives ended", wst.deaths)
        yield counter("baolife_busy_days", "Game days run in full (the rest were quiet, run in bulk)", wst.busy_days)
        yield counter("baolife_fast_forward_days", "Extra game days run by fast-forward", wst.fast_forward_days)
        yield counter(
            "baolife_fast_forward_refused",
            "Fast-forward steps run at x1 for the tick's budget",
            wst.fast_forward_refused,
        )
        saver_stats = saver.statistics()
        yield counter("baolife_flush_rows", "Player rows saved", saver_stats.rows)
        yield counter(
            "baolife_saves_fenced", "Saves refused because another process owns the player", saver_stats.fenced
        )
        yield gauge("baolife_store_up", "1 when the store took the last probe write", 1.0 if self.store_ok else 0.0)
        yield gauge("baolife_npc_queue", "NPC reply jobs waiting", ns.queued)
        yield gauge("baolife_npc_queue_capacity", "NPC reply job channel size (ai_queue)", ns.capacity)
        yield gauge("baolife_npc_workers_busy", "NPC workers on a job", ns.busy_workers)
        yield counter("baolife_npc_fallbacks", "NPC replies answered by the scripted fallback", ns.fallbacks)
        yield counter("baolife_npc_fallback_reasons", "Scripted fallbacks by reason", npc.fallback_reasons(), "reason")
        yield gauge("baolife_draining", "1 while shutting down", 1.0 if self.draining else 0.0)
        yield counter("baolife_ops_sent", "Ops sent in frames, by kind", ls.ops, "kind")
        yield counter(
            "baolife_rate_limited",
            "Messages, connections and registrations refused by a per-client limit, by limit",
            {
                "messages": ws_stats.inbound.get("rate_limited", 0),
                "connections_per_ip": ws_stats.refused.get("per_ip", 0),
                "registrations_per_ip": self.ws.auth.registrations.refused,
            },
            "limit",
        )
        yield counter(
            "baolife_systemd_notify_failures", "sd_notify datagrams that could not be sent", self.notifier.failed
        )
        if self.log_writer is not None:
            yield counter("baolife_log_lines", "Log lines written", self.log_writer.written)
            yield counter(
                "baolife_log_lines_dropped", "Log lines dropped: the log writer fell behind", self.log_writer.dropped
            )
        store_stats = getattr(self.store, "statistics", None)
        if store_stats is not None:
            yield from _optional_families(store_stats(), _STORE_OPTIONAL)
        yield from _optional_families(ns, _AI_OPTIONAL)
