"""The store interface: what the server asks of its database.

Two implementations stand behind it: :mod:`baolife.db.sqlite` (the embedded
default) and :mod:`baolife.db.mysql` (production). Both pass one test suite;
:func:`baolife.db.open_store` picks one by URL. This module defines the
interface only and imports neither.

Exceptions (foreign ones are translated where they enter)::

    StoreError
    ├── StoreUnavailable   the database cannot be reached or timed out; retry later
    └── StoreCorrupt       a row the server cannot read

A save of a player this process no longer owns is not an exception: it is
reported by :meth:`Store.save` as a refused id (see "ownership" in DESIGN.md).

One piece: the contract both stores implement, with the values its methods
take and return and the statistics they report; an implementer or a caller
reads it whole, and it holds no code of either store.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

__all__ = [
    "LATENCY_BUCKETS",
    "AiDay",
    "AccountInfo",
    "AccountLogin",
    "AuditEntry",
    "Ban",
    "NoticeRow",
    "Claim",
    "Progress",
    "QueryStats",
    "FirstState",
    "SaveRow",
    "Saved",
    "Store",
    "StoreStatistics",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "hash_token",
]


class StoreError(Exception):
    """Base of store failures."""


class StoreUnavailable(StoreError):
    """The database is unreachable, overloaded or timed out. Nothing was
    lost: the caller keeps its data and retries later."""


class StoreCorrupt(StoreError):
    """Stored data the server cannot read."""


def hash_token(token: str) -> bytes:
    """The SHA-256 of a login token: all the database ever holds of it."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@attrs.frozen
class Progress:
    """What time alone moves in a life: its age, money and lowest money.

    Most saves of an online player carry nothing else (the steps between
    two saves were wholly quiet), so they are saved as this small row, apart
    from the state document; a full save of the state supersedes it (the
    store drops it in the same transaction), and whoever reads the state
    reads it with its progress (:attr:`Claim.progress`, :class:`Saved`) and
    lays it over the document (``baolife.players.apply_progress``)."""

    age_days: int
    money: int
    low_money: int


@attrs.frozen
class Claim:
    """A player taken by this process: its saved state (None for a player
    never saved), its name, the owner epoch before and after the claim, and
    the progress saved since that state (None: none)."""

    player_id: int
    name: str
    state: bytes | None
    previous_epoch: int
    epoch: int
    progress: Progress | None = None


@attrs.frozen
class Saved:
    """A player's saved state document and the progress saved since it."""

    state: bytes
    progress: Progress | None = None


@attrs.frozen
class SaveRow:
    """One player's save: the whole state document (``state``), or only its
    :class:`Progress` since the last one (``state`` None). ``stored``: the
    codec a store already put ``state`` in for itself (see
    :meth:`Store.save`); None for the document as the game wrote it."""

    player_id: int
    state: bytes | None
    schema_version: int
    epoch: int
    progress: Progress | None = None
    stored: int | None = None


@attrs.frozen
class AccountInfo:
    """An account as the operators' console lists it. ``last_login``: when a
    worker last loaded the player for a login (None: never since issue 16)."""

    player_id: int
    name: str
    created_at: int
    last_login: int | None = None


@attrs.frozen
class Ban:
    """A player's ban: why, until when (unix seconds; None: no end), by whom, when."""

    reason: str
    until: int | None
    by: str
    at: int


@attrs.frozen
class AccountLogin:
    """What a login needs of an account before loading it: its player id
    and its ban (expired or not; None: never banned or lifted)."""

    player_id: int
    ban: Ban | None = None


@attrs.frozen
class NoticeRow:
    """The operators' announcement: shown to every player until ``until``."""

    text: str
    until: int
    by: str
    at: int


@attrs.frozen
class AuditEntry:
    """One operator action (the ``admin_audit`` table): ``origin`` is the
    client address the request came from."""

    at: int
    who: str
    role: str
    action: str
    player_id: int | None
    detail: str
    origin: str


@attrs.frozen
class AiDay:
    """A UTC day's AI totals over every worker sharing the database:
    ``spent`` settled, ``reserved`` by calls in flight (or by calls whose
    worker died: charged at their worst case), ``budget`` the one set live
    for the day (None: each worker's setting)."""

    spent: float = 0.0
    reserved: float = 0.0
    calls: int = 0
    budget: float | None = None


# The first state of a new account: called with the new player id inside the
# account's transaction, returns (save document, schema version).
FirstState = Callable[[int], tuple[bytes, int]]


# Upper bounds (seconds) of the store call latency histogram.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@attrs.frozen
class StoreStatistics:
    """A store's connections and calls, read at scrape time.

    ``pool_size`` bounds ``pool_open`` (connections lent, idle or being
    opened); ``pool_in_use`` are lent now; ``pool_waiting`` counts calls
    waiting for a connection; ``pool_wait_seconds`` sums their waits over
    ``pool_acquires``. A *call* is one store method call (one or a few
    statements, one transaction at most): ``calls`` and ``call_seconds``
    count all of them, ``call_buckets`` are the cumulative counts per
    :data:`LATENCY_BUCKETS`, ``failures`` those that did not return (an
    error, a timeout or a cancel), ``timeouts`` those that ran out of the
    store's own time limit. ``batch_calls`` and ``batch_keys`` count the
    calls that sent logins' lookups and claims together and the keys they
    sent (:mod:`baolife.db.batcher`; keys per call grow with the queue).
    The ``pool_*`` and ``batch_*`` fields and ``timeouts`` are exported as
    metrics (``STORE_OPTIONAL`` in :mod:`baolife.metrics.store`).
    """

    kind: str
    pool_size: int
    pool_open: int
    pool_in_use: int
    pool_waiting: int
    pool_acquires: int
    pool_wait_seconds: float
    calls: int
    call_seconds: float
    call_buckets: tuple[int, ...]
    failures: int
    timeouts: int
    batch_calls: int | None = None  # None: the store sends no batches (SQLite)
    batch_keys: int | None = None


class QueryStats:
    """Counters behind the ``calls`` part of :class:`StoreStatistics`."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        self.failures = 0
        self.timeouts = 0
        self._buckets = [0] * len(LATENCY_BUCKETS)

    def observe(self, seconds: float, *, failed: bool = False, timed_out: bool = False) -> None:
        """Count one call that took ``seconds``."""
        self.calls += 1
        self.seconds += seconds
        self.failures += failed
        self.timeouts += timed_out
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if i < len(self._buckets):
            self._buckets[i] += 1

    def report(
        self,
        kind: str,
        *,
        pool_size: int,
        pool_open: int,
        pool_in_use: int,
        pool_waiting: int,
        pool_acquires: int,
        pool_wait_seconds: float,
    ) -> StoreStatistics:
        """A store's :class:`StoreStatistics`: its pool as given, its calls from here."""
        return StoreStatistics(
            kind=kind,
            pool_size=pool_size,
            pool_open=pool_open,
            pool_in_use=pool_in_use,
            pool_waiting=pool_waiting,
            pool_acquires=pool_acquires,
            pool_wait_seconds=pool_wait_seconds,
            calls=self.calls,
            call_seconds=self.seconds,
            call_buckets=self.cumulative(),
            failures=self.failures,
            timeouts=self.timeouts,
        )

    def cumulative(self) -> tuple[int, ...]:
        """Calls at or under each bucket bound."""
        out, total = [], 0
        for n in self._buckets:
            total += n
            out.append(total)
        return tuple(out)


class Store(Protocol):
    """Async access to accounts, player states and AI usage."""

    kind: str

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""

    async def pending_migrations(self) -> list[str]:
        """Names of migrations not applied yet."""

    async def create_account(self, name: str, token_hash: bytes, first_state: FirstState | None = None) -> int:
        """Create an account and its player row in one transaction; return the
        player id. ``first_state(player_id)`` gives the row's first saved state
        and its schema version (a new player's life, durable before anyone is
        told the account exists); without it the row has no state yet."""

    async def find_account(self, token_hash: bytes) -> int | None:
        """The player id of a token hash, or None."""

    async def find_login(self, token_hash: bytes) -> AccountLogin | None:
        """The account of a token hash with its ban, read in one statement
        (a login's first round trip), or None."""

    async def claim(self, player_id: int) -> Claim:
        """Take ownership of a player (bump its epoch) and read its state.
        With the store's ``worker`` set (a worker of a cluster), records that
        worker as the owner, or raises ``PlayerHeld`` and changes nothing if
        another live worker owns the player (:mod:`baolife.db.cluster`)."""

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        """Save ``rows`` in one transaction; a row whose epoch is not the
        stored one is not written. A state row drops the player's saved
        progress; a progress row keeps the state and replaces the progress.
        Returns the refused player ids; saving the same rows again gives the
        same result. A store that keeps states in another form (the MySQL
        store compresses them) may put each row of a list ``rows`` back in
        that form once it has made it, in place and in order, marked with
        ``SaveRow.stored``: the caller's list then no longer holds the
        documents while the write waits on the database (the saver's batches
        in flight), and a second save of it writes the same states. A store
        refuses a row stored in a form not its own (ValueError)."""

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        """Add to a player's AI usage of a UTC day (``YYYY-MM-DD``)."""

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        """Calls per player and total cost of a UTC day."""

    # ----------------------------------------------------------------- shared AI budget and cache (baolife.ai)

    async def ai_reserve(self, day: str, player_id: int, worst: float, player_calls: int, budget: float) -> str | None:
        """Count one call of the player and reserve ``worst`` against the
        day's budget (the one set for the day, else ``budget``), atomically
        against every other worker: None when both fit, else ``"player"``
        (the player has ``player_calls`` calls) or ``"budget"``; a refusal
        leaves nothing counted."""

    async def ai_settle(self, day: str, released: float, costs: Sequence[tuple[int, float]]) -> None:
        """Calls of the day ended: release ``released`` of the reservations
        and add each ``(player_id, cost)`` to the day's spend and the player's."""

    async def ai_day(self, day: str) -> AiDay:
        """The day's totals over every worker (zeros for a day without calls)."""

    async def set_ai_day_budget(self, day: str, budget: float | None) -> None:
        """Set the day's budget for every worker (None: back to their setting)."""

    async def ai_cache_get(self, key: bytes, now: float) -> tuple[str, float] | None:
        """A shared reply and its expiry (Unix seconds), unless absent or expired at ``now``."""

    async def ai_cache_put(self, entries: Sequence[tuple[bytes, str, float]]) -> None:
        """Store ``(key, reply, expires_at)`` entries, replacing older ones."""

    async def ai_cache_prune(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` entries expired at ``now``; how many were."""

    # ----------------------------------------------------------------- operators (baolife.admin)

    async def find_players(self, query: str, limit: int) -> list[AccountInfo]:
        """Accounts whose id is ``query`` (when it is a number) or whose name
        starts with it (case as the database compares), at most ``limit``, by id."""

    async def account_info(self, player_id: int) -> AccountInfo | None:
        """The account of ``player_id``, or None."""

    async def player_state(self, player_id: int) -> Saved | None:
        """The saved state of ``player_id`` as stored (not claimed)."""

    async def is_erased(self, player_id: int) -> bool:
        """True if ``player_id`` was erased (:meth:`erase_player`)."""

    async def get_ban(self, player_id: int) -> Ban | None:
        """The ban of ``player_id`` (expired or not), or None."""

    async def set_ban(self, player_id: int, ban: Ban) -> bool:
        """Ban (or re-ban) a player; False, and nothing written, when there is no such account."""

    async def clear_ban(self, player_id: int) -> bool:
        """Lift a ban; False when there was none."""

    async def set_mute(self, player_id: int, muted: bool, by: str, at: int) -> bool:
        """Turn a player's NPC talk off (``muted``) or on; False, nothing
        written, when there is no such account."""

    async def muted_players(self) -> set[int]:
        """Every muted player."""

    async def get_notice(self) -> NoticeRow | None:
        """The announcement stored (maybe expired), or None."""

    async def put_notice(self, notice: NoticeRow | None) -> None:
        """Store the announcement, or withdraw it (None)."""

    async def erase_player(self, player_id: int, at: int) -> bool:
        """Delete the account, its state, usage, ban, mute and login rows in
        one transaction and remember the id as erased; False, nothing
        changed, when there is no such account (unknown or already erased)."""

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append to the audit log."""

    async def audit_log(self, limit: int, player_id: int | None = None) -> list[AuditEntry]:
        """The newest ``limit`` audit entries (of one player when given), newest first."""

    async def player_ai_usage(self, day: str, player_id: int) -> tuple[int, float]:
        """A player's AI calls and cost of a UTC day."""

    async def player_ai_history(self, player_id: int) -> list[tuple[str, int, float]]:
        """Every day's AI calls and cost of a player, oldest first (for an export)."""

    async def ping(self) -> None:
        """Write the heartbeat row; raise StoreUnavailable unless the database
        takes that write now (a read would pass on a full disk or a locked
        table, where saves and logins fail)."""

    def statistics(self) -> StoreStatistics:
        """Connections, waits and call latencies so far."""

    async def aclose(self) -> None:
        """Release connections; idempotent."""
