"""The reply cache of greetings and small talk: local, and shared by the workers.

Such a reply is generic (persona, role, the player's life stage, closeness
band and intent; see :func:`~baolife.ai.prompt.cache_key`), so it may go to
every player of every worker. Two levels:

1. **local**: a bounded TTL/LRU cache in this process (``capacity`` entries,
   ``ttl`` seconds). A hit costs no I/O.
2. **shared** (when a ``store`` is given: workers on one MySQL/MariaDB): the
   ``ai_reply_cache`` table. A local miss asks it (in the AI path, bounded by
   :data:`SHARED_GET_SECONDS`); a shared hit is kept locally until the
   shared entry expires. A reply fetched from the upstream goes into both:
   locally at once, to the table by this cache's own task (:meth:`run`),
   batched. So a greeting answered on one worker is a hit on every other,
   and two workers call the upstream for it as often as one.

When the store fails or is slow the cache falls back to its local level for
:data:`SHARED_RETRY_SECONDS` and then tries again: a database outage costs
hits, never a reply. Writes waiting for the table are bounded
(:data:`MAX_PENDING_WRITES`, the rest dropped: it is a cache). Expired rows
are deleted by every worker in small batches (:data:`PRUNE_BATCH` every
:data:`PRUNE_EVERY` seconds); the table holds at most one row per key, and
the keys are bounded by the content (personas x roles x stages x bands x
intents).

Expiry is wall-clock time (``clock``, Unix seconds by default) on both
levels, so workers agree on it (their clocks kept by NTP).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

import attrs
import cachetools
import orjson
import structlog
import trio

from ..db.store import Store, StoreError
from .prompt import CacheKey

__all__ = ["CacheStatistics", "ReplyCache"]

log = structlog.get_logger("baolife.ai.cache")

SHARED_GET_SECONDS = 0.5
SHARED_RETRY_SECONDS = 10.0
MAX_PENDING_WRITES = 1000
WRITE_BATCH = 100
PRUNE_EVERY = 600.0
PRUNE_BATCH = 1000
CLOSE_SECONDS = 2.0
# Part of every shared key: change it when the generic prompt changes, so
# replies to the old prompt are not served (they expire on their own).
KEY_VERSION = 1


@attrs.frozen
class CacheStatistics:
    """Hits by level, misses (the upstream was asked), local entries, and the
    shared level's failures, writes and dropped writes."""

    hits: int
    shared_hits: int
    misses: int
    entries: int
    capacity: int
    shared: bool
    shared_errors: int
    shared_writes: int
    shared_dropped: int


def _expiry(_key: object, value: tuple[str, float], _now: float) -> float:
    return value[1]


class ReplyCache:
    """See the module docstring. ``capacity`` 0 turns caching off."""

    def __init__(
        self,
        capacity: int,
        ttl: float,
        *,
        model: str,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.model = model
        self.store = store if capacity else None
        self.clock = clock
        self.local: cachetools.TLRUCache[CacheKey, tuple[str, float]] = cachetools.TLRUCache(
            maxsize=max(1, capacity), ttu=_expiry, timer=clock
        )
        self._writes: dict[bytes, tuple[str, float]] = {}
        self._write_wanted = trio.Event()
        self._write_lock = trio.Lock()
        self._down_until = -math.inf
        self.get_seconds = SHARED_GET_SECONDS
        self.retry_seconds = SHARED_RETRY_SECONDS
        self.hits = 0
        self.shared_hits = 0
        self.misses = 0
        self.shared_errors = 0
        self.shared_writes = 0
        self.shared_dropped = 0

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(
            hits=self.hits,
            shared_hits=self.shared_hits,
            misses=self.misses,
            entries=len(self.local),
            capacity=self.capacity,
            shared=self.store is not None,
            shared_errors=self.shared_errors,
            shared_writes=self.shared_writes,
            shared_dropped=self.shared_dropped,
        )

    def digest(self, key: CacheKey) -> bytes:
        """The shared key: 16 bytes of the version, the model and ``key``."""
        return hashlib.blake2b(orjson.dumps([KEY_VERSION, self.model, *key]), digest_size=16).digest()

    async def get(self, key: CacheKey) -> str | None:
        """The cached reply, or None (a miss: the caller asks the upstream)."""
        if not self.capacity:
            return None
        found = self.local.get(key)
        if found is not None:
            self.hits += 1
            return found[0]
        if self.store is not None and trio.current_time() >= self._down_until:
            shared = await self._shared_get(self.store, key)
            if shared is not None:
                self.local[key] = shared
                self.shared_hits += 1
                return shared[0]
        self.misses += 1
        return None

    async def _shared_get(self, store: Store, key: CacheKey) -> tuple[str, float] | None:
        try:
            with trio.move_on_after(self.get_seconds):
                return await store.ai_cache_get(self.digest(key), self.clock())
            raise StoreError(f"no answer within {self.get_seconds:g} s")
        except StoreError as exc:
            self._shared_failed("get", exc)
            return None

    def _shared_failed(self, what: str, exc: Exception) -> None:
        self.shared_errors += 1
        if trio.current_time() >= self._down_until:
            log.warning("ai_shared_cache_down", step=what, retry_in=self.retry_seconds, error=repr(exc))
        self._down_until = trio.current_time() + self.retry_seconds

    def put(self, key: CacheKey, text: str) -> None:
        """Keep a reply the upstream gave: locally now, shared soon. Never awaits."""
        if not self.capacity:
            return
        expires = self.clock() + self.ttl
        self.local[key] = (text, expires)
        if self.store is None:
            return
        if len(self._writes) >= MAX_PENDING_WRITES:
            self.shared_dropped += 1
            return
        self._writes[self.digest(key)] = (text, expires)
        self._write_wanted.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write replies to the shared level and prune it, until cancelled
        (returns at once without a shared level)."""
        task_status.started()
        store = self.store
        if store is None:
            return
        next_prune = trio.current_time()
        try:
            while True:
                with trio.move_on_at(next_prune):
                    await self._write_wanted.wait()
                self._write_wanted = trio.Event()
                await self.flush()
                if trio.current_time() >= next_prune:
                    next_prune = trio.current_time() + PRUNE_EVERY
                    await self._prune(store)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_SECONDS):
                await self.flush()

    async def flush(self) -> None:
        """Write the replies waiting for the shared level now (and wait for a
        batch already being written)."""
        if self.store is not None:
            async with self._write_lock:
                await self._write(self.store)

    async def _write(self, store: Store) -> None:
        while self._writes:
            if trio.current_time() < self._down_until:
                self.shared_dropped += len(self._writes)
                self._writes.clear()
                return
            keys = list(self._writes)[:WRITE_BATCH]
            entries = [(k, *self._writes.pop(k)) for k in keys]
            try:
                await store.ai_cache_put(entries)
                self.shared_writes += len(entries)
            except StoreError as exc:
                self.shared_dropped += len(entries)
                self._shared_failed("put", exc)

    async def _prune(self, store: Store) -> None:
        if trio.current_time() < self._down_until:
            return
        try:
            await store.ai_cache_prune(self.clock(), PRUNE_BATCH)
        except StoreError as exc:
            self._shared_failed("prune", exc)
