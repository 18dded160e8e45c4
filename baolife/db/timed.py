"""A store that times every call of the store it wraps.

The timing is reported through a plain callback, ``observe(op, seconds,
ok)``, so the database layer knows nothing of the metrics registry that
listens (:meth:`baolife.metrics.Metrics.observe_store`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import trio

from .store import AccountLogin, Claim, FirstState, SaveRow, Store

__all__ = ["TimedStore"]

T = TypeVar("T")


class TimedStore:
    """A :class:`~baolife.db.store.Store` that times every call of the store
    it wraps: ``observe(op, seconds, ok)``. Works for any store, so SQLite and
    MySQL report ``baolife_store_seconds`` alike; anything else (a store's own
    ``statistics()``, methods added later) passes through untimed."""

    def __init__(self, store: Store, observe: Callable[[str, float, bool], None]) -> None:
        self.inner = store
        self.kind = store.kind
        self._observe = observe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _timed(self, op: str, call: Callable[[], Awaitable[T]]) -> T:
        started = trio.current_time()
        ok = False
        try:
            result = await call()
            ok = True
            return result
        finally:
            self._observe(op, trio.current_time() - started, ok)

    async def migrate(self) -> list[str]:
        """Timed :meth:`Store.migrate`."""
        return await self._timed("migrate", self.inner.migrate)

    async def pending_migrations(self) -> list[str]:
        """Timed :meth:`Store.pending_migrations`."""
        return await self._timed("pending_migrations", self.inner.pending_migrations)

    async def create_account(self, name: str, token_hash: bytes, first_state: FirstState | None = None) -> int:
        """Timed :meth:`Store.create_account`."""
        return await self._timed("create_account", lambda: self.inner.create_account(name, token_hash, first_state))

    async def find_account(self, token_hash: bytes) -> int | None:
        """Timed :meth:`Store.find_account`."""
        return await self._timed("find_account", lambda: self.inner.find_account(token_hash))

    async def find_login(self, token_hash: bytes) -> AccountLogin | None:
        """Timed :meth:`Store.find_login` (a login's first call)."""
        return await self._timed("find_login", lambda: self.inner.find_login(token_hash))

    async def claim(self, player_id: int) -> Claim:
        """Timed :meth:`Store.claim`."""
        return await self._timed("claim", lambda: self.inner.claim(player_id))

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        """Timed :meth:`Store.save`."""
        return await self._timed("save", lambda: self.inner.save(rows))

    async def add_ai_usage(self, day: str, player_id: int, calls: int, cost: float) -> None:
        """Timed :meth:`Store.add_ai_usage`."""
        await self._timed("add_ai_usage", lambda: self.inner.add_ai_usage(day, player_id, calls, cost))

    async def ai_usage(self, day: str) -> tuple[dict[int, int], float]:
        """Timed :meth:`Store.ai_usage`."""
        return await self._timed("ai_usage", lambda: self.inner.ai_usage(day))

    async def ai_reserve(self, day: str, player_id: int, worst: float, player_calls: int, budget: float) -> str | None:
        """Timed :meth:`Store.ai_reserve` (in the AI path before every call, workers on MySQL)."""
        return await self._timed(
            "ai_reserve", lambda: self.inner.ai_reserve(day, player_id, worst, player_calls, budget)
        )

    async def ai_settle(self, day: str, released: float, costs: Sequence[tuple[int, float]]) -> None:
        """Timed :meth:`Store.ai_settle`."""
        await self._timed("ai_settle", lambda: self.inner.ai_settle(day, released, costs))

    async def ai_cache_get(self, key: bytes, now: float) -> tuple[str, float] | None:
        """Timed :meth:`Store.ai_cache_get` (a local miss of the reply cache, workers on MySQL)."""
        return await self._timed("ai_cache_get", lambda: self.inner.ai_cache_get(key, now))

    async def ping(self) -> None:
        """Timed :meth:`Store.ping`."""
        await self._timed("ping", self.inner.ping)

    async def aclose(self) -> None:
        """Close the wrapped store (not timed)."""
        await self.inner.aclose()
