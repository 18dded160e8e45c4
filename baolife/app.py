"""Builds the nursery tree of DESIGN.md from a config, runs it, drains it.

::

    App.run
    └── store (SQLite or MySQL pool), migrated
        └── app nursery
            ├── signals: SIGTERM/SIGINT start a graceful shutdown
            ├── saver: write-behind flushes
            ├── bus: events from every worker (baolife.cluster)
            ├── ai workers
            ├── tick loop
            ├── store watch: readiness
            ├── trimmer: freed C-heap memory back to the system (baolife.memtrim)
            ├── websocket listener (+ one nursery of connections)
            └── http listener: /healthz /readyz /metrics, the web client and
                its /config.json (where the WebSocket is, the tick rate), and
                the operators' console /admin/ when admin tokens are set

Graceful shutdown, inside ``shutdown_timeout``: stop accepting, tell the
other workers on the bus that this one drains, stop the tick loop at a tick
boundary (the players stay connected, frozen), flush every dirty player,
leave the cluster (every player free to be claimed at once), then ``bye``
shutdown and close 1001 to every connection, let the connections close,
close the store. The exit status is 0 when everything was saved.

Under systemd (``Type=notify``) the app sends ``READY=1`` once it listens,
``WATCHDOG=1`` after ticks, ``STATUS=`` with each summary and ``STOPPING=1``
when the drain starts (:mod:`baolife.systemd`). Every log line of the app's
tasks carries the current ``tick``; connection tasks add ``session`` and
``player``.

One piece: the wiring of the whole tree, read top to bottom in one place;
everything it wires lives in its own module.
"""

from __future__ import annotations

import gc
import random
import secrets
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import cast

import structlog
import trio

from . import content as content_pkg
from . import protocol as wire
from .admin.actions import Actions
from .admin.api import AdminApi
from .admin.presence import Presence
from .ai.llm import LlmProvider
from .ai.offline import ScriptedProvider
from .ai.reply import Provider
from .ai.service import NpcService
from .cluster import Bus, BusEvent, LocalBus
from .cluster.dbbus import DbBus
from .cluster.ownership import Ownership, WorkerIdInUse, default_worker_id
from .cluster.proxycheck import ProxyCheck
from .config import ConfigError, Settings
from .content.schema import Content
from .db import TimedStore, open_store
from .db.cluster import ClusterStore
from .db.store import Store, StoreError
from .health import Health, client_config, routes
from .logs import Deferred, LogWriter
from .memtrim import Trimmer, glibc_trim
from .metrics import Metrics
from .metrics import ai as ai_metrics
from .metrics import cluster as cluster_metrics
from .metrics import net as net_metrics
from .metrics import players as player_metrics
from .metrics import process as process_metrics
from .metrics import store as store_metrics
from .metrics import tick as tick_metrics
from .net.accept import fit_descriptors
from .net.auth import Auth
from .net.http import HttpListener
from .net.listener import WsListener
from .net.webfiles import WebFiles, WebSite
from .players import Directory, Saver
from .players.handoff import Vacate
from .protocol import CloseCode
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

# Seconds a drain gives the bus to take its "draining" event (one insert)
# before its players are sent away anyway: a store that does not answer
# must not hold the shutdown up.
ANNOUNCE_DRAIN_WITHIN = 1.0


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
        # Handlers of bus events by kind (baolife.cluster): each area that
        # acts on what another worker said registers its own.
        self.bus_handlers: dict[str, Callable[[BusEvent], None]] = {}
        self.exit_code = 0
        self.ws_port: int | None = None
        self.http_port: int | None = None
        self._shutdown = trio.Event()
        self._summary = [0, 0.0, 0.0, 0, 0]  # ticks, sum seconds, max seconds, frames, bytes
        self._summary_every = max(1, round(settings.summary_interval * settings.tick_hz))

    @property
    def draining(self) -> bool:
        """True once the graceful shutdown started (readiness says so)."""
        return self.health.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self.health.draining = value

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
            if self.bus_kind == "db":
                # Every player this process creates or claims is recorded as
                # its own (baolife.db.cluster), and one another worker owns
                # is handed over first. With a local bus there is no one to
                # ask: the process is alone (the single-worker path as ever),
                # and joining below only finds out if it is not (/readyz).
                cast(ClusterStore, raw_store).worker = self.worker_id
            try:
                await self.ownership.join()
            except WorkerIdInUse as exc:
                raise ConfigError(f"BAOLIFE_WORKER_ID: {exc}") from None
            # Bound before the nursery opens, so every task of the app inherits
            # it; read only when a line is written (free for the tick loop).
            structlog.contextvars.bind_contextvars(tick=Deferred(lambda: self.loop.tick))
            async with trio.open_nursery() as root:
                self._root = root
                if self.signals:
                    root.start_soon(self._watch_signals)
                await root.start(self.saver.run)
                await root.start(self.ownership.run)
                await root.start(self.bus.run, self._on_bus_event)
                await root.start(self.actions.run)
                await root.start(self.presence.run)
                await root.start(self.npc.run)
                await root.start(self.loop.run)
                root.start_soon(self.health.watch_store)
                await root.start(self.trimmer.run)
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

    def _build(self, store: Store, rng: random.Random) -> None:
        s = self.settings
        # Who this worker is to the others, and how they hear each other
        # (docs/SCALING.md): a table in the shared database, or this process only.
        self.worker_id = s.worker_id or default_worker_id(s.ws_bind[1])
        self.bus_kind = bus_kind = s.bus_url if s.bus_url != "auto" else ("db" if store.kind == "mysql" else "local")
        cluster_store = cast(ClusterStore, store)
        self.bus: Bus = (
            DbBus(cluster_store, self.worker_id, poll=s.bus_poll) if bus_kind == "db" else LocalBus(self.worker_id)
        )
        self.ownership = Ownership(
            cluster_store,
            self.bus,
            worker=self.worker_id,
            lease=s.lease_timeout,
            vacate=lambda pid: self.vacate(pid),
            on_lapse=self._on_lapse,
            bus_kind=bus_kind,
            store_kind=store.kind,
            address=f"{s.ws_bind[0]}:{s.ws_bind[1]}",
        )
        self.bus_handlers["handoff"] = self.ownership.on_handoff
        self.bus_handlers["released"] = self.ownership.on_released
        self.bus_handlers["left"] = self.ownership.on_left
        self.bus_handlers["draining"] = self.ownership.on_draining
        self.inbox = Inbox(limit=s.effective_inbox_limit)
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
            self.content,
            day_ticks=s.day_ticks,
            year_days=s.year_days,
            rng=rng,
            submit_say=self.npc.submit,
            fast_forward_budget=s.fast_forward_budget,
        )
        self.directory = Directory(
            store,
            lambda pid, name: self.world.rules.new_life(pid, name, 1),
            capacity=s.max_loaded_players,
            claim=self.ownership.claim,
        )
        self.loop = TickLoop(
            self.world,
            self.inbox,
            tick_hz=s.tick_hz,
            mark_dirty=self.directory.mark_dirty,
            mark_progressed=self.directory.mark_progressed,
            on_online=self._on_online,
            on_tick=self._on_tick,
            welcome=self._welcome,
        )
        self.saver = Saver(
            store,
            self.directory,
            interval=s.save_interval,
            batch=s.save_batch,
            on_fenced=self._on_fenced,
            observe=self.metrics.observe_flush,
        )
        self.trimmer = Trimmer(s.malloc_trim_interval, glibc_trim())
        self.ws = WsListener(
            s,
            self.loop,
            self.inbox,
            Auth(
                store, self.directory, self.inbox, register_per_ip_hour=s.register_per_ip_hour, timeout=s.auth_timeout
            ),
        )
        self.vacate = Vacate(self.loop, self.inbox, self.directory, self.saver)
        self.health = Health(s, store=store, loop=self.loop, directory=self.directory, saver=self.saver, ws=self.ws)
        self.ws.proxy_check = proxy_check = ProxyCheck(s.trusted_proxies, store.kind)
        self.health.cluster_problems = lambda: self.ownership.problems() + proxy_check.problems()
        # The console's files are its own table, served only with the admin API.
        self.web = WebSite(
            WebFiles.load(WEB_DIR, skip=("admin",)), lambda: client_config(s, self.ws_port, self.http_port)
        )
        self.actions = Actions(
            store=store,
            bus=self.bus,
            loop=self.loop,
            inbox=self.inbox,
            world=self.world,
            directory=self.directory,
            npc=self.npc,
            health=self.health,
            worker=self.worker_id,
            shutting_down=self._shutdown.is_set,
            erase_grace=3 * s.bus_poll + 0.1,
        )
        self.bus_handlers.update(self.actions.handlers())
        # Every worker's console reads who is online where from the owner rows.
        self.presence = Presence(
            cluster_store if bus_kind == "db" else None,
            self.worker_id,
            online_here=lambda pid: pid in self.loop.by_player,
            limit=s.max_loaded_players,
            paused=self._shutdown.is_set,
        )
        self.admin = AdminApi(
            s,
            actions=self.actions,
            # The game client's helpers, colours and base rules, one copy of each for both pages.
            files=WebFiles.load(
                WEB_DIR / "admin",
                mount="/admin",
                shared={
                    "game-dom.js": WEB_DIR / "dom.js",
                    "theme.css": WEB_DIR / "theme.css",
                    "base.css": WEB_DIR / "base.css",
                },
            ),
            loop=self.loop,
            world=self.world,
            directory=self.directory,
            npc=self.npc,
            ws=self.ws,
            health=self.health,
            render_metrics=self.metrics.render,
        )
        self.http = HttpListener(
            s.http_bind[0],
            s.http_bind[1],
            routes(self.health, self.metrics.render),
            self.web,
            max_connections=s.http_max_connections,
            admin=self.admin.handle if s.admin_tokens else None,
        )
        # Each area reads its own components at scrape time (baolife.metrics).
        add = self.metrics.add_source
        add(partial(tick_metrics.families, self.loop, self.world, self.inbox))
        add(partial(player_metrics.families, self.directory, self.saver))
        add(partial(cluster_metrics.families, self.ownership, self.bus))
        add(lambda: store_metrics.families(store, self.health.store_ok))
        add(partial(net_metrics.families, self.ws, self.http))
        add(partial(ai_metrics.families, self.npc))
        add(lambda: process_metrics.families(self.health.draining, self.notifier, self.log_writer, self.trimmer))
        add(self.admin.metric_families)
        add(self.presence.metric_families)

    async def _drain(self) -> None:
        s = self.settings
        started = trio.current_time()
        self.draining = True
        self.ownership.draining = True  # its players are freed at the end, all at once
        self.notifier.stopping(f"draining: {len(self.ws.sessions)} connections, {self.directory.dirty_count} unsaved")
        log.info("shutdown_started", connections=len(self.ws.sessions), dirty=self.directory.dirty_count)
        with trio.move_on_after(s.shutdown_timeout) as scope:
            self.ws.stop_accepting()
            # Before the players go: the others' logins then wait for our
            # "left" without asking us (baolife.cluster.ownership).
            with trio.move_on_after(ANNOUNCE_DRAIN_WITHIN):
                await self.ownership.announce_drain()
            # Saved and released before the players go: wherever they land
            # they are free, so their logins claim at once instead of
            # waiting for this drain, answered busy and trying again
            # (thousands at once in a reconnect storm; docs/BENCHMARKS.md).
            await self.loop.stop(goodbye=False)
            try:
                unsaved = await self.saver.flush_all(attempts=1)
                if not unsaved:
                    # Every player saved: the others may take ours at once.
                    await self.ownership.leave()
            finally:
                self.loop.goodbye()
            cut = await self.ws.drain(min(5.0, s.shutdown_timeout / 4))
            if unsaved:
                # A store outage: the players went all the same; this keeps
                # probing until the shutdown timeout ends it, and then the
                # log names who was not saved.
                unsaved = await self.saver.flush_all(attempts=None)
                if not unsaved:
                    await self.ownership.leave()
        if scope.cancelled_caught:
            unsaved = self.directory.dirty_count
            cut = len(self.ws.sessions)
        if unsaved:
            self.exit_code = 1
            log.error(
                "shutdown_unsaved", players=unsaved, ids=self.saver.unsaved_ids(), store_error=self.health.store_error
            )
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

    # ----------------------------------------------------------------- hooks

    def _on_bus_event(self, event: BusEvent) -> None:
        handler = self.bus_handlers.get(event.kind)
        if handler is None:
            log.warning("bus_event_unknown", kind=event.kind, origin=event.origin)
        else:
            handler(event)

    def _welcome(self, pid: int) -> list[wire.Op]:
        # Late-bound: the tick loop is built before the admin state it reads.
        return self.actions.state.welcome(pid)

    def _on_online(self, pid: int, online: bool) -> None:
        if not online:
            entry = self.directory.get(pid)
            if entry is not None and pid not in self.loop.by_player:
                self.presence.left(pid, entry.epoch)  # its owner row says offline soon
            self.directory.release(pid)
            self.vacate.offline(pid)  # a handoff waiting for it goes on at once
            if pid not in self.world.players:
                # Gone, not replaced by a new connection: its NPC reply is
                # no longer wanted, so stop paying for it.
                self.npc.cancel(pid)

    def _on_lapse(self) -> None:
        # The lease ran out: another worker may take our players any moment,
        # so none may play on here. They reconnect (1001) and land on a
        # worker that holds the database; cached copies are loaded afresh.
        for session in list(self.loop.by_player.values()):
            self.inbox.put(Kick(session, "shutdown", CloseCode.SHUTDOWN), force=True)
        self.directory.distrust()

    def _on_fenced(self, pid: int) -> None:
        session = self.loop.by_player.get(pid)
        if session is not None:
            self.inbox.put(Kick(session, "replaced", CloseCode.REPLACED), force=True)

    def _on_tick(self, tick: int, seconds: float, late: float, frames: int, nbytes: int) -> None:
        now = trio.current_time()
        self.ownership.check()
        self.health.tick_seen(now)
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
