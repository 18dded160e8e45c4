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
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

__all__ = [
    "LATENCY_BUCKETS",
    "Claim",
    "QueryStats",
    "FirstState",
    "SaveRow",
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
class Claim:
    """A player taken by this process: its saved state (None for a player
    never saved), its name, and the owner epoch before and after the claim."""

    player_id: int
    name: str
    state: bytes | None
    previous_epoch: int
    epoch: int


@attrs.frozen
class SaveRow:
    player_id: int
    state: bytes
    schema_version: int
    epoch: int


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
    store's own time limit. The ``pool_*`` fields and ``timeouts`` are
    exported as metrics (``STORE_OPTIONAL`` in :mod:`baolife.metrics.store`).
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

    async def claim(self, player_id: int) -> Claim:
        """Take ownership of a player (bump its epoch) and read its state."""

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        """Save ``rows`` in one transaction; a row whose epoch is not the
        stored one is not written. Returns the refused player ids."""

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        """Add to a player's AI usage of a UTC day (``YYYY-MM-DD``)."""

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        """Calls per player and total cost of a UTC day."""

    async def ping(self) -> None:
        """Write the heartbeat row; raise StoreUnavailable unless the database
        takes that write now (a read would pass on a full disk or a locked
        table, where saves and logins fail)."""

    def statistics(self) -> StoreStatistics:
        """Connections, waits and call latencies so far."""

    async def aclose(self) -> None:
        """Release connections; idempotent."""
