"""The database layer: the store interface, its SQLite and MySQL
implementations, migrations, and :class:`TimedStore`.

A leaf: it imports nothing of the game (only :mod:`baolife.dburl`, the URL
grammar it shares with the settings). What to save and when is decided
above it, in :mod:`baolife.players`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from .store import Store
from .timed import TimedStore

__all__ = ["TimedStore", "open_store"]


def open_store(url: str, *, pool_size: int = 8, root: str = ".") -> AbstractAsyncContextManager[Store]:
    """An async context manager yielding the store for ``url``
    (``sqlite:///PATH`` or ``mysql://user:pw@host:port/db``); a relative
    SQLite path is resolved against ``root``. Each implementation is imported
    only when chosen (the MySQL one loads aiomysql and trio-asyncio)."""
    if url.startswith("sqlite:"):
        from .sqlite import open_sqlite

        return open_sqlite(url, root=root)
    from .mysql import open_mysql

    return open_mysql(url, pool_size=pool_size)
