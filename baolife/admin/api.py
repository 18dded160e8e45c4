"""The admin API's HTTP side: ``/admin/api/...`` (JSON) and the console's
files at ``/admin/`` (docs/OPERATIONS.md, "The operators' console").

Every API request, in this order: the client's address is rate limited
(a token bucket per address; a request without a valid token costs
:data:`FAILED_AUTH_COST` so guessing is slow), then the token is checked
(401 for a missing or wrong one, whatever the path: nothing tells what
exists), then the role (403 for a viewer acting), then the body (JSON
object, at most the listener's body limit, else 413), then the route.
Every answer is counted by outcome (``baolife_admin_requests``).

The console's page and files need no token (they hold no data); they are
served only when the API is on, like the API itself.

One piece: one HTTP front door whose checks (rate, token, role, body) run in
one order for every route; the routes are thin and call Actions or the read-
only views.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import cachetools
import orjson
import structlog
from prometheus_client.core import Metric

from ..ai.budget import utc_day
from ..ai.service import NpcService
from ..config import AdminToken, Settings
from ..db.store import StoreCorrupt, StoreError
from ..health import Health
from ..metrics import counter
from ..model import Player, SaveError, load_player
from ..net.http import Reply, Request
from ..net.listener import WsListener
from ..net.proxy import client_address
from ..net.webfiles import WebFiles
from ..players import Directory, apply_progress
from ..tick.engine import World
from ..tick.loop import TickLoop
from .actions import Actions, Actor, AdminError, erased, not_found, notice_json
from .tokens import OPERATOR, TokenTable
from .views import WorkerPanel, ban_view, export_document, life_view, llm_figures

__all__ = ["AdminApi", "OUTCOMES"]

log = structlog.get_logger("baolife.admin")

API_PREFIX = "/admin/api/"
MOUNT = "/admin"
JSON = "application/json"
NO_STORE = (("cache-control", "no-store"),)
FAILED_AUTH_COST = 5.0
MAX_ADDRESSES = 10_000
SEARCH_LIMIT = 50
AUDIT_LIMIT = 500
# Outcomes counted (every one present in the metric, at 0).
OUTCOMES = (
    "ok",
    "unauthorized",
    "forbidden",
    "bad_request",
    "not_found",
    "conflict",
    "too_large",
    "rate_limited",
    "unavailable",
    "method_not_allowed",
)
_STATUS_OUTCOME = {
    200: "ok",
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}

Handler = Callable[[Actor, int | None, dict[str, Any], dict[str, list[str]]], Awaitable[Any]]


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class RateLimiter:
    """A token bucket per client address: ``rate`` per second, ``burst`` at most."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: cachetools.LRUCache[str, _Bucket] = cachetools.LRUCache(MAX_ADDRESSES)

    def take(self, address: str, cost: float = 1.0) -> float:
        """Take ``cost``; 0 when allowed, else the seconds until it would be."""
        now = self.clock()
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate

    def charge(self, address: str, cost: float) -> None:
        """Take ``cost`` more (may go below zero: the wait grows)."""
        bucket = self._buckets.get(address)
        if bucket is not None:
            bucket.tokens -= cost


def _answer(status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, JSON, orjson.dumps(body), NO_STORE + headers)


def _error(status: int, code: str, message: str | None = None) -> Reply:
    body: dict[str, Any] = {"error": code}
    if message is not None:
        body["message"] = message
    return _answer(status, body)


class AdminApi:
    """Answers every request under ``/admin`` (the HTTP listener's ``admin``
    hook); see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        actions: Actions,
        files: WebFiles,
        loop: TickLoop,
        world: World,
        directory: Directory,
        npc: NpcService,
        ws: WsListener,
        health: Health,
        render_metrics: Callable[[], bytes],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.tokens = TokenTable(settings.admin_tokens)
        self.actions = actions
        self.store = actions.store
        self.files = files
        self.loop = loop
        self.world = world
        self.directory = directory
        self.npc = npc
        self.ws = ws
        self.health = health
        self.panel = WorkerPanel(render_metrics)
        self.limiter = RateLimiter(settings.admin_rate, settings.admin_burst, clock)
        self.outcomes: Counter[str] = Counter({name: 0 for name in OUTCOMES})
        # (method, first segments) -> (role needed, handler); the player id,
        # when the path has one, is the segment after "players".
        self._routes: dict[tuple[str, str], tuple[str | None, Handler]] = {
            ("GET", "whoami"): (None, self._whoami),
            ("GET", "players"): (None, self._search),
            ("GET", "players/*"): (None, self._player),
            ("POST", "players/*/kick"): (OPERATOR, self._kick),
            ("POST", "players/*/ban"): (OPERATOR, self._ban),
            ("POST", "players/*/unban"): (OPERATOR, self._unban),
            ("POST", "players/*/mute"): (OPERATOR, self._mute),
            ("GET", "players/*/export"): (OPERATOR, self._export),
            ("POST", "players/*/erase"): (OPERATOR, self._erase),
            ("GET", "notice"): (None, self._get_notice),
            ("POST", "notice"): (OPERATOR, self._post_notice),
            ("DELETE", "notice"): (OPERATOR, self._delete_notice),
            ("GET", "llm"): (None, self._llm),
            ("POST", "llm/budget"): (OPERATOR, self._budget),
            ("GET", "worker"): (None, self._worker),
            ("POST", "drain"): (OPERATOR, self._drain),
            ("POST", "undrain"): (OPERATOR, self._undrain),
            ("GET", "audit"): (None, self._audit),
        }

    def metric_families(self) -> list[Metric]:
        """``baolife_admin_requests`` by outcome (read at scrape time)."""
        return [counter("baolife_admin_requests", "Admin API requests by outcome", self.outcomes, "outcome")]

    # ----------------------------------------------------------------- entry

    async def handle(self, request: Request) -> Reply:
        """The reply to a request under ``/admin``."""
        if not request.path.startswith(API_PREFIX):
            return self._file(request)
        reply = await self._api(request)
        self.outcomes[_STATUS_OUTCOME.get(reply.status, "ok" if reply.status < 400 else "bad_request")] += 1
        return reply

    def _file(self, request: Request) -> Reply:
        if request.method not in ("GET", "HEAD"):
            return Reply(405, "text/plain; charset=utf-8", b"method not allowed\n", (("allow", "GET, HEAD"),))
        rest = request.path[len(MOUNT) :] or "/"
        found = self.files.answer(Request(request.method, rest, request.headers))
        return found or Reply(404, "text/plain; charset=utf-8", b"not found\n", NO_STORE)

    def _address(self, request: Request) -> str:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()]
        return client_address(request.remote, headers, self.settings.trusted_proxies)

    async def _api(self, request: Request) -> Reply:
        address = self._address(request)
        wait = self.limiter.take(address)
        if wait > 0:
            return _answer(
                429,
                {"error": "rate_limited", "message": "too many requests; slow down"},
                (("retry-after", str(max(1, math.ceil(wait)))),),
            )
        if request.oversized:
            return _error(413, "too_large", "the body is larger than the API takes")
        token = self.tokens.check(request.headers.get("authorization"))
        if token is None:
            self.limiter.charge(address, FAILED_AUTH_COST)
            log.warning("admin_unauthorized", origin=address, path=request.path[:100])
            return _error(401, "unauthorized")
        try:
            return await self._route(request, token, address)
        except AdminError as exc:
            return _error(exc.status, exc.code, exc.message)
        except StoreError as exc:
            log.warning("admin_store_unavailable", path=request.path[:100], error=str(exc))
            return _error(503, "unavailable", "the database is unavailable; try again in a moment")

    async def _route(self, request: Request, token: AdminToken, address: str) -> Reply:
        segments = request.path[len(API_PREFIX) :].rstrip("/").split("/")
        pid: int | None = None
        if len(segments) >= 2 and segments[0] == "players":
            pid = _player_id(segments[1])
            segments[1] = "*"
        key = "/".join(segments)
        known = {path for _, path in self._routes}
        if key not in known:
            raise AdminError(404, "not_found", "no such API path")
        route = self._routes.get((request.method if request.method != "HEAD" else "GET", key))
        if route is None:
            allowed = ", ".join(sorted(m for m, path in self._routes if path == key))
            return Reply(405, JSON, b'{"error":"method_not_allowed"}', NO_STORE + (("allow", allowed),))
        role, handler = route
        if role == OPERATOR and token.role != OPERATOR:
            log.warning("admin_forbidden", who=token.name, path=request.path[:100], origin=address)
            raise AdminError(403, "forbidden", "needs the operator role")
        body = _body(request) if request.method in ("POST", "DELETE") else {}
        try:
            query = parse_qs(request.query, max_num_fields=20)
        except ValueError:
            raise AdminError(400, "bad_request", "too many query parameters") from None
        result = await handler(Actor(token.name, token.role, address), pid, body, query)
        if isinstance(result, Reply):
            return result
        return _answer(200, result)

    # ----------------------------------------------------------------- reads

    async def _whoami(self, actor: Actor, _pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        return {"name": actor.name, "role": actor.role}

    async def _search(self, actor: Actor, _pid: int | None, _b: dict[str, Any], q: dict[str, list[str]]) -> Any:
        text = (q.get("q") or [""])[0].strip()
        if not text or len(text) > 64:
            raise AdminError(400, "bad_request", "q must be a player id or the start of a name (1 to 64 characters)")
        limit = _int_param(q, "limit", 20, 1, SEARCH_LIMIT)
        found = await self.store.find_players(text, limit)
        now = time.time()
        out = []
        for account in found:
            online, worker = await self._where(account.player_id)
            ban = ban_view(await self.store.get_ban(account.player_id), now)
            out.append(
                {
                    "id": account.player_id,
                    "name": account.name,
                    "online": online,
                    "worker": worker,
                    "banned": ban is not None,
                    "created_at": account.created_at,
                }
            )
        return {"players": out}

    async def _where(self, pid: int) -> tuple[bool, str | None]:
        """Online or not, and the worker that holds the player, the same
        answer from every worker: this one when they play here, else the
        cluster's owner (issue 13: the live worker that last loaded them)
        and whether they are online there (its owner row's flag,
        :mod:`baolife.admin.presence`), None when no live worker holds them
        (a crashed worker's lease has run out: offline)."""
        here = self.actions.worker
        if self.actions.online_here(pid):
            return True, here
        presence = getattr(self.store, "presence", None)
        if presence is not None:
            found = await presence(pid)
            if found is not None:
                worker, online = found
                # Our own row may still say online while its clearing is
                # under way: this worker's sessions are the truth here.
                return online and worker != here, str(worker)
        return False, None

    async def _current(self, pid: int) -> Player | None:
        """The player's current life: this worker's copy when loaded (the
        freshest), else the saved state."""
        entry = self.directory.get(pid)
        if entry is not None and not entry.fenced:
            return entry.player
        saved = await self.store.player_state(pid)
        if saved is None:
            return None
        try:
            player = apply_progress(load_player(saved.state), saved.progress)
        except SaveError as exc:
            raise StoreCorrupt(f"player {pid}: {exc}") from exc
        player.id = pid
        return player

    async def _account(self, pid: int | None) -> Any:
        assert pid is not None  # noqa: S101 - every players/* route has one
        account = await self.store.account_info(pid)
        if account is None:
            raise erased(pid) if await self.store.is_erased(pid) else not_found(pid)
        return account

    async def _ai_today(self, pid: int) -> tuple[str, int, float]:
        day = utc_day()
        calls, cost = await self.store.player_ai_usage(day, pid)
        return day, calls, cost

    async def _player(self, actor: Actor, pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        account = await self._account(pid)
        pid = account.player_id
        online, worker = await self._where(pid)
        player = await self._current(pid)
        _day, calls, cost = await self._ai_today(pid)
        return {
            "id": pid,
            "name": account.name,
            "created_at": account.created_at,
            "last_login": account.last_login,
            "online": online,
            "worker": worker,
            "banned": ban_view(await self.store.get_ban(pid), time.time()),
            "muted": pid in self.actions.state.muted,
            "life": None if player is None else life_view(player, self.world.rules, self.world.year_days),
            "ai_today": {"calls": calls, "cost": round(cost, 6)},
        }

    async def _export(self, actor: Actor, pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        account = await self._account(pid)
        pid = account.player_id
        player = await self._current(pid)
        doc = export_document(
            account,
            player,
            ban=await self.store.get_ban(pid),
            muted=pid in self.actions.state.muted,
            ai_usage=await self.store.player_ai_history(pid),
            now=time.time(),
        )
        await self.actions.audit(actor, "export", pid, {})
        disposition = ("content-disposition", f'attachment; filename="baolife-player-{pid}.json"')
        return Reply(200, JSON, orjson.dumps(doc), NO_STORE + (disposition,))

    async def _get_notice(self, actor: Actor, _pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        return {"notice": notice_json(self.actions.state.current_notice(time.time()))}

    async def _llm(self, actor: Actor, _pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        budget = self.actions.state.budget
        return await llm_figures(self.npc, self.settings.ai_daily_budget if budget is None else budget)

    async def _worker(self, actor: Actor, _pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        return {
            "worker": self.actions.worker,
            "ready": not self.health.readiness(),
            "draining": self.health.draining,
            "players_online": len(self.loop.by_player),
            "connections": len(self.ws.sessions),
            "loaded": len(self.directory),
            **self.panel.read(),
        }

    async def _audit(self, actor: Actor, _pid: int | None, _b: dict[str, Any], q: dict[str, list[str]]) -> Any:
        limit = _int_param(q, "limit", 50, 1, AUDIT_LIMIT)
        player = q.get("player")
        pid = _player_id(player[0]) if player else None
        entries = await self.store.audit_log(limit, pid)
        return {
            "entries": [
                {
                    "at": e.at,
                    "who": e.who,
                    "role": e.role,
                    "action": e.action,
                    "player": e.player_id,
                    "detail": _detail(e.detail),
                    "from": e.origin,
                }
                for e in entries
            ]
        }

    # ----------------------------------------------------------------- actions

    async def _kick(self, actor: Actor, pid: int | None, body: dict[str, Any], _q: Any) -> Any:
        assert pid is not None  # noqa: S101
        return await self.actions.kick(actor, pid, body.get("reason"))

    async def _ban(self, actor: Actor, pid: int | None, body: dict[str, Any], _q: Any) -> Any:
        assert pid is not None  # noqa: S101
        return await self.actions.ban(actor, pid, body.get("reason"), body.get("until"))

    async def _unban(self, actor: Actor, pid: int | None, body: dict[str, Any], _q: Any) -> Any:
        assert pid is not None  # noqa: S101
        return await self.actions.unban(actor, pid)

    async def _mute(self, actor: Actor, pid: int | None, body: dict[str, Any], _q: Any) -> Any:
        assert pid is not None  # noqa: S101
        return await self.actions.mute(actor, pid, body.get("muted"))

    async def _erase(self, actor: Actor, pid: int | None, body: dict[str, Any], _q: Any) -> Any:
        assert pid is not None  # noqa: S101
        return await self.actions.erase(actor, pid, body.get("confirm"))

    async def _post_notice(self, actor: Actor, _pid: int | None, body: dict[str, Any], _q: Any) -> Any:
        return await self.actions.announce(actor, body.get("text"), body.get("until"))

    async def _delete_notice(self, actor: Actor, _pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        return await self.actions.withdraw(actor)

    async def _budget(self, actor: Actor, _pid: int | None, body: dict[str, Any], _q: Any) -> Any:
        return await self.actions.set_budget(actor, body.get("budget"))

    async def _drain(self, actor: Actor, _pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        return await self.actions.drain(actor)

    async def _undrain(self, actor: Actor, _pid: int | None, _b: dict[str, Any], _q: Any) -> Any:
        return await self.actions.undrain(actor)


def _player_id(text: str) -> int:
    if not text.isdigit() or len(text) > 18 or not text.isascii():
        raise AdminError(400, "bad_request", "a player id is a positive whole number")
    return int(text)


def _int_param(q: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = q.get(name)
    if not values:
        return default
    text = values[0]
    if not text.isdigit() or not text.isascii() or not low <= int(text) <= high:
        raise AdminError(400, "bad_request", f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body)."""
    if not request.body.strip():
        return {}
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise AdminError(400, "bad_request", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise AdminError(400, "bad_request", "the body must be a JSON object")
    return body


def _detail(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
