"""The store interface: what the server asks of its database.

Two implementations stand behind it: :mod:`baolife.db.sqlite` (the embedded
default) and :mod:`baolife.db.mysql` (production). Both pass one test suite.

Exceptions (foreign ones are translated where they enter)::

    StoreError
    ├── StoreUnavailable   the database cannot be reached or timed out; retry later
    └── StoreCorrupt       a row the server cannot read

A save of a player this process no longer owns is not an exception: it is
reported by :meth:`Store.save` as a refused id (see "ownership" in DESIGN.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs

__all__ = [
    "Claim",
    "SaveRow",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreUnavailable",
    "hash_token",
    "open_store",
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


class Store(Protocol):
    """Async access to accounts, player states and AI usage."""

    kind: str

    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""

    async def pending_migrations(self) -> list[str]:
        """Names of migrations not applied yet."""

    async def create_account(self, name: str, token_hash: bytes) -> int:
        """Create an account and its (empty) player row; return the player id."""

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
        """Raise StoreUnavailable unless the database answers now."""

    async def aclose(self) -> None:
        """Release connections; idempotent."""


def open_store(url: str, *, pool_size: int = 8, root: str = ".") -> AbstractAsyncContextManager[Store]:
    """An async context manager yielding the store for ``url``
    (``sqlite:///PATH`` or ``mysql://user:pw@host:port/db``)."""
    if url.startswith("sqlite:"):
        from .sqlite import open_sqlite

        return open_sqlite(url, root=root)
    from .mysql import open_mysql

    return open_mysql(url, pool_size=pool_size)
