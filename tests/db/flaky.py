"""A real store wrapped so tests can count its calls and take it down."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from baolife.db.store import Claim, SaveRow, Store, StoreStatistics, StoreUnavailable


class FlakyStore:
    """Delegates to ``inner``; while :attr:`down`, every call raises
    StoreUnavailable, as a cut network would."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.down = False
        self.claims = 0
        self.saves: list[int] = []

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the test cut the database")

    async def claim(self, player_id: int) -> Claim:
        self._check()
        self.claims += 1
        return await self.inner.claim(player_id)

    async def save(self, rows: Sequence[SaveRow]) -> set[int]:
        self._check()
        self.saves.append(len(rows))
        return await self.inner.save(rows)

    def statistics(self) -> StoreStatistics:
        return self.inner.statistics()  # synchronous: not through __getattr__

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self._check()
            return await attr(*args, **kwargs)

        return call
