"""What an operator does, and what every worker keeps of it.

An action is done in two steps: the store first (the durable truth, one
transaction that also settles races: a ban of a player being erased either
lands before the erase, which deletes it, or finds no account), then an
event on the bus (:mod:`baolife.cluster`) that every worker sharing the
store receives, the one that published included, to act on its own
connections and memory: end a banned or erased player's session, drop an
erased player's state, mute, show the notice, apply a budget. An erase
goes the other way round: the event first, so every worker ends the session
and stops saving the player, then (a bus round trip later) the rows go.
Each action is then written to the ``admin_audit`` table and logged.

Actions on one player are run one at a time on a worker (a lock per
player), so two operators acting at once get answers in some order, each
true when given.

What each worker keeps in memory, loaded at start and kept by the bus
events: the muted players (the engine refuses their ``say`` without
waiting on the store) and the notice (sent to every player who logs in
while it lasts, through the tick loop's ``welcome`` hook).

Draining is per worker: readiness false at once, and when other workers
are alive, its players are moved a few seconds later (``bye`` shutdown:
they resume elsewhere, and the worker that gets them takes them over).

One piece: each action's two steps (the store, then the bus event every
worker acts on) and what a worker keeps in memory are written side by side,
so an action and its handler are read together.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import structlog
import trio

from .. import protocol as wire
from ..ai.llm import LlmProvider
from ..ai.service import NpcService
from ..cluster import Bus, BusEvent
from ..db.store import AuditEntry, Ban, NoticeRow, Store, StoreError
from ..health import Health
from ..players import Directory
from ..tick.engine import World
from ..tick.loop import Broadcast, Inbox, Kick, TickLoop

__all__ = ["Actor", "AdminError", "AdminState", "Actions"]

log = structlog.get_logger("baolife.admin")

LOAD_RETRY = 5.0
DRAIN_MOVE_AFTER = 6.0
NOTICE_CHARS = 280
MAX_BUDGET = 1e9  # as BAOLIFE_AI_DAILY_BUDGET's bound
REASON_CHARS = 500


class AdminError(Exception):
    """An action refused: ``status`` and ``code`` as the API answers them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(pid: int) -> AdminError:
    return AdminError(404, "not_found", f"no player {pid}")


def erased(pid: int) -> AdminError:
    return AdminError(409, "conflict", f"player {pid} was erased")


@attrs.frozen
class Actor:
    """Who acts: the token's name and role, and the client address."""

    name: str
    role: str
    origin: str


class AdminState:
    """What this worker keeps of the operators' decisions (see the module docstring)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.notice: NoticeRow | None = None
        # The day's budget an operator set (shown when no LLM is configured;
        # with one, its cost governor holds it).
        self.budget: float | None = None
        self.loaded = False

    @property
    def muted(self) -> set[int]:
        return self.world.muted

    def current_notice(self, now: float) -> NoticeRow | None:
        notice = self.notice
        return notice if notice is not None and notice.until > now else None

    def welcome(self, pid: int) -> list[wire.Op]:
        """Ops for a player logging in (the tick loop's ``welcome`` hook)."""
        notice = self.current_notice(time.time())
        return [] if notice is None else [wire.Notice(text=notice.text, until=notice.until)]


class Actions:
    """The operators' actions on one worker; see the module docstring.

    Built by the app with the components it acts on; :meth:`handlers` are
    the bus handlers it registers; :meth:`run` loads the mutes and the
    notice (retrying while the store is away).
    """

    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        loop: TickLoop,
        inbox: Inbox,
        world: World,
        directory: Directory,
        npc: NpcService,
        health: Health,
        worker: str,
        shutting_down: Callable[[], bool],
        erase_grace: float = 0.1,
    ) -> None:
        self.store = store
        self.bus = bus
        self.loop = loop
        self.inbox = inbox
        self.world = world
        self.directory = directory
        self.npc = npc
        self.health = health
        self.worker = worker
        self.shutting_down = shutting_down
        # Seconds between the erase event and deleting the rows: a bus round
        # trip, so every worker has ended the session and stopped saving.
        self.erase_grace = erase_grace
        self.state = AdminState(world)
        self.drained = False
        # Seconds from a drain to moving this worker's players (longer than
        # the proxy takes to see readiness false: 4 s in deploy/haproxy).
        self.move_after = DRAIN_MOVE_AFTER
        self._moving: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._locks: dict[int, trio.Lock] = {}

    # ----------------------------------------------------------------- start

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Load the mutes and the notice (one try before ``started``, then
        retries until it works), and host the drains' background moves,
        until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._load)
            task_status.started()
            await trio.sleep_forever()

    async def _load(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            try:
                muted = await self.store.muted_players()
                notice = await self.store.get_notice()
            except StoreError as exc:
                log.warning("admin_state_load_failed", error=str(exc))
            else:
                # Merged, not replaced: a bus event may have come meanwhile.
                self.state.muted.update(muted)
                if self.state.notice is None:
                    self.state.notice = notice
                self.state.loaded = True
                if not started:
                    task_status.started()
                return
            if not started:
                started = True
                task_status.started()
            await trio.sleep(LOAD_RETRY)

    def handlers(self) -> dict[str, Callable[[BusEvent], None]]:
        """The bus handlers of the admin events, by kind."""
        return {
            "admin.kick": self._on_kick,
            "admin.erase": self._on_erase,
            "admin.mute": self._on_mute,
            "admin.notice": self._on_notice,
            "admin.budget": self._on_budget,
        }

    # ----------------------------------------------------------------- helpers

    @asynccontextmanager
    async def _player(self, pid: int) -> AsyncIterator[None]:
        """Hold the player's lock (actions on one player, one at a time)."""
        lock = self._locks.get(pid)
        if lock is None:
            lock = self._locks[pid] = trio.Lock()
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._locks.pop(pid, None)

    async def _exists(self, pid: int) -> None:
        """Raise 404 (unknown) or 409 (erased) unless ``pid`` has an account."""
        if await self.store.account_info(pid) is None:
            raise erased(pid) if await self.store.is_erased(pid) else not_found(pid)

    async def audit(self, actor: Actor, action: str, pid: int | None, detail: dict[str, Any]) -> None:
        """Write the action to the audit log and the log; a failed write is
        logged (the action is done either way)."""
        now = int(time.time())
        text = orjson.dumps(detail).decode()
        log.info(
            "admin_action",
            who=actor.name,
            role=actor.role,
            action=action,
            player=pid,
            detail=detail,
            origin=actor.origin,
        )
        entry = AuditEntry(now, actor.name, actor.role, action, pid, text, actor.origin)
        try:
            await self.store.add_audit(entry)
        except StoreError as exc:
            log.error("admin_audit_unsaved", who=actor.name, action=action, player=pid, error=str(exc))

    def online_here(self, pid: int) -> bool:
        return pid in self.loop.by_player

    def _end_session(self, pid: int, reason: str, message: str) -> bool:
        session = self.loop.by_player.get(pid)
        if session is None:
            return False
        self.inbox.put(_kick(session, reason, message), force=True)
        return True

    # ----------------------------------------------------------------- actions

    async def kick(self, actor: Actor, pid: int, reason: Any) -> dict[str, Any]:
        reason = _text(reason, "reason", REASON_CHARS, allow_empty=True) or "ended by an operator"
        async with self._player(pid):
            await self._exists(pid)
            await self.bus.publish(BusEvent("admin.kick", pid, {"reason": "kicked", "message": reason}))
            await self.audit(actor, "kick", pid, {"reason": reason})
        return {"ok": True}

    async def ban(self, actor: Actor, pid: int, reason: Any, until: Any) -> dict[str, Any]:
        text = _text(reason, "reason", REASON_CHARS)
        now = int(time.time())
        if until is not None:
            if isinstance(until, bool) or not isinstance(until, (int, float)) or not math_finite(until):
                raise AdminError(400, "bad_request", "until must be unix seconds or null")
            until = int(until)
            if until <= now:
                raise AdminError(400, "bad_request", "until is in the past; a ban must end in the future (or never)")
        async with self._player(pid):
            if not await self.store.set_ban(pid, Ban(text, until, actor.name, now)):
                raise erased(pid) if await self.store.is_erased(pid) else not_found(pid)
            message = f"banned: {text}"
            await self.bus.publish(BusEvent("admin.kick", pid, {"reason": "banned", "message": message}))
            await self.audit(actor, "ban", pid, {"reason": text, "until": until})
        return {"ok": True, "until": until}

    async def unban(self, actor: Actor, pid: int) -> dict[str, Any]:
        async with self._player(pid):
            await self._exists(pid)
            lifted = await self.store.clear_ban(pid)
            await self.audit(actor, "unban", pid, {"was_banned": lifted})
        return {"ok": True, "was_banned": lifted}

    async def mute(self, actor: Actor, pid: int, muted: Any) -> dict[str, Any]:
        if not isinstance(muted, bool):
            raise AdminError(400, "bad_request", "muted must be true or false")
        async with self._player(pid):
            if not await self.store.set_mute(pid, muted, actor.name, int(time.time())):
                raise erased(pid) if await self.store.is_erased(pid) else not_found(pid)
            await self.bus.publish(BusEvent("admin.mute", pid, {"muted": muted}))
            await self.audit(actor, "mute" if muted else "unmute", pid, {})
        return {"ok": True, "muted": muted}

    async def erase(self, actor: Actor, pid: int, confirm: Any) -> dict[str, Any]:
        if confirm != pid or isinstance(confirm, bool):
            raise AdminError(400, "bad_request", f"to erase player {pid}, send confirm: {pid}")
        async with self._player(pid):
            await self._exists(pid)
            # The session first: every worker ends it and stops saving the
            # player, then the rows go. Deleted first, a save racing the
            # event would be refused and end the session as "replaced".
            await self.bus.publish(BusEvent("admin.erase", pid, {}))
            await trio.sleep(self.erase_grace)
            if not await self.store.erase_player(pid, int(time.time())):
                raise erased(pid) if await self.store.is_erased(pid) else not_found(pid)
            # Nothing personal in the audit entry of an erasure: the id alone.
            await self.audit(actor, "erase", pid, {})
        return {"ok": True}

    async def announce(self, actor: Actor, text: Any, until: Any) -> dict[str, Any]:
        body = _text(text, "text", NOTICE_CHARS)
        now = int(time.time())
        if isinstance(until, bool) or not isinstance(until, (int, float)) or not math_finite(until):
            raise AdminError(400, "bad_request", "until must be unix seconds")
        if int(until) <= now:
            raise AdminError(400, "bad_request", "until is in the past; a notice must last into the future")
        notice = NoticeRow(body, int(until), actor.name, now)
        await self.store.put_notice(notice)
        await self.bus.publish(BusEvent("admin.notice", None, attrs.asdict(notice)))
        await self.audit(actor, "notice", None, {"text": body, "until": notice.until})
        return {"ok": True, "notice": _notice_json(notice)}

    async def withdraw(self, actor: Actor) -> dict[str, Any]:
        had = self.state.notice is not None
        await self.store.put_notice(None)
        await self.bus.publish(BusEvent("admin.notice", None, {}))
        await self.audit(actor, "notice_withdrawn", None, {})
        return {"ok": True, "had_notice": had}

    async def set_budget(self, actor: Actor, budget: Any) -> dict[str, Any]:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math_finite(budget) or budget < 0:
            raise AdminError(400, "bad_request", "budget must be a number >= 0")
        if budget > MAX_BUDGET:
            raise AdminError(400, "bad_request", f"budget must be at most {MAX_BUDGET:g}")
        provider = self.npc.provider
        before: float | None = self.state.budget
        if isinstance(provider, LlmProvider):
            before = provider.governor.budget()
            try:
                # Stored for the day: every worker obeys it from its next
                # refresh, a restart keeps it; the bus event makes it now.
                await provider.governor.set_day_budget(float(budget))
            except ValueError as exc:
                raise AdminError(400, "bad_request", str(exc)) from None
        await self.bus.publish(BusEvent("admin.budget", None, {"budget": float(budget)}))
        await self.audit(actor, "budget", None, {"budget": float(budget), "before": before})
        return {"ok": True, "budget": float(budget)}

    async def drain(self, actor: Actor) -> dict[str, Any]:
        """Readiness false now (the proxy sends new players elsewhere); when
        other workers are alive, after :attr:`move_after` seconds (the proxy
        has seen it by then) every player here gets ``bye`` shutdown and
        close 1001, and resumes on another worker, which takes the player
        over (issue 13's handoff: saved here first)."""
        self.drained = True
        self.health.draining = True
        others = await self._other_workers()
        moving: float | None = None
        if self._moving is not None:
            self._moving.cancel()
            self._moving = None
        if others and self._nursery is not None:
            moving = self.move_after
            self._moving = trio.CancelScope()
            self._nursery.start_soon(self._move_players, self._moving)
        await self.audit(actor, "drain", None, {"worker": self.worker, "others": len(others)})
        return {"ok": True, "worker": self.worker, "draining": True, "moving_players_in": moving}

    async def _other_workers(self) -> list[str]:
        live = getattr(self.store, "live_workers", None)
        if live is None:
            return []
        try:
            return [w.id for w in await live() if w.id != self.worker]
        except StoreError as exc:
            log.warning("admin_drain_workers_unknown", error=str(exc))
            return []

    async def _move_players(self, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(self.move_after)
            if not self.drained:
                return
            moved = 0
            for session in list(self.loop.by_player.values()):
                self.inbox.put(Kick(session, "shutdown", wire.CloseCode.SHUTDOWN), force=True)
                moved += 1
            log.info("drain_moved_players", worker=self.worker, players=moved)

    async def undrain(self, actor: Actor) -> dict[str, Any]:
        if self.shutting_down():
            raise AdminError(409, "conflict", "this worker is shutting down; it cannot be undrained")
        self.drained = False
        self.health.draining = False
        if self._moving is not None:
            self._moving.cancel()
            self._moving = None
        await self.audit(actor, "undrain", None, {"worker": self.worker})
        return {"ok": True, "worker": self.worker, "draining": False}

    # ----------------------------------------------------------------- bus handlers (every worker)

    def _on_kick(self, event: BusEvent) -> None:
        if event.player is not None:
            body = event.body
            self._end_session(event.player, str(body.get("reason", "kicked")), str(body.get("message", "")))

    def _on_erase(self, event: BusEvent) -> None:
        pid = event.player
        if pid is None:
            return
        self._end_session(pid, "erased", "your account was erased")
        self.state.muted.discard(pid)
        self.npc.cancel(pid)
        entry = self.directory.get(pid)
        if entry is not None:
            # Never saved again; dropped once the session lets go of it.
            self.directory.fence(entry)

    def _on_mute(self, event: BusEvent) -> None:
        if event.player is None:
            return
        if event.body.get("muted"):
            self.state.muted.add(event.player)
        else:
            self.state.muted.discard(event.player)

    def _on_notice(self, event: BusEvent) -> None:
        body = event.body
        if not body:
            self.state.notice = None
            self.inbox.put(Broadcast(_ops(wire.Notice(text="", until=0))))
            return
        try:
            notice = NoticeRow(str(body["text"]), int(body["until"]), str(body["by"]), int(body["at"]))
        except (KeyError, TypeError, ValueError):
            log.warning("admin_notice_malformed", origin=event.origin)
            return
        self.state.notice = notice
        self.inbox.put(Broadcast(_ops(wire.Notice(text=notice.text, until=notice.until))))

    def _on_budget(self, event: BusEvent) -> None:
        try:
            budget = float(event.body["budget"])
        except (KeyError, TypeError, ValueError):
            log.warning("admin_budget_malformed", origin=event.origin)
            return
        self.state.budget = budget
        provider = self.npc.provider
        if isinstance(provider, LlmProvider):
            provider.governor.day_budget = budget
        log.info("llm_budget_set", budget=budget, origin=event.origin)


def _ops(*ops: wire.Op) -> tuple[wire.Op, ...]:
    return ops


def _kick(session: Any, reason: str, message: str) -> Kick:
    """The Kick that ends a session with ``bye`` ``reason`` and ``message``
    (the message once the tick loop's Kick carries one)."""
    extra: dict[str, Any] = {"message": message} if "message" in attrs.fields_dict(Kick) else {}
    return Kick(session, reason, wire.CloseCode.KICKED, **extra)


def _notice_json(notice: NoticeRow | None) -> dict[str, Any] | None:
    return None if notice is None else {"text": notice.text, "until": notice.until, "by": notice.by, "at": notice.at}


def notice_json(notice: NoticeRow | None) -> dict[str, Any] | None:
    """A notice as the API shows it."""
    return _notice_json(notice)


def math_finite(value: float) -> bool:
    return math.isfinite(value)


def _text(value: Any, name: str, limit: int, *, allow_empty: bool = False) -> str:
    """A short text field of a request: a string, trimmed, 1..limit
    characters (0 allowed with ``allow_empty``), no control characters."""
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        raise AdminError(400, "bad_request", f"{name} must be a string")
    text = value.strip()
    if not text and not allow_empty:
        raise AdminError(400, "bad_request", f"{name} must not be empty")
    if len(text) > limit:
        raise AdminError(400, "bad_request", f"{name} is longer than {limit} characters")
    if any(ord(c) < 0x20 and c not in "\n\t" for c in text):
        raise AdminError(400, "bad_request", f"{name} holds control characters")
    return text
