"""The store's families: whether it takes writes, and its pool and time
limits where the store reports them. (Every call's time is a histogram
observed as it happens: :class:`baolife.db.TimedStore`.)"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ..db.store import Store
from . import OptionalFamily, gauge, optional_families

__all__ = ["STORE_OPTIONAL", "families"]

# Fields of StoreStatistics: the MySQL store's pool is real, SQLite reports
# its one connection as a pool of one. docs/OPERATIONS.md marks them ¹.
STORE_OPTIONAL: tuple[OptionalFamily, ...] = (
    ("pool_size", "baolife_store_pool_size", "gauge", "Connections the store pool may open (db_pool)"),
    ("pool_in_use", "baolife_store_pool_in_use", "gauge", "Store connections lent out now"),
    ("pool_waiting", "baolife_store_pool_waiting", "gauge", "Store calls waiting for a connection"),
    ("pool_acquires", "baolife_store_pool_acquires", "counter", "Connections taken from the pool"),
    ("pool_wait_seconds", "baolife_store_pool_wait_seconds", "counter", "Seconds spent waiting for a connection"),
    ("pool_open", "baolife_store_pool_open", "gauge", "Store connections open: lent, idle or being opened"),
    ("timeouts", "baolife_store_timeouts", "counter", "Store calls that ran out of their own time limit"),
    ("batch_calls", "baolife_store_batch_calls", "counter", "Store calls sending logins' lookups or claims together"),
    ("batch_keys", "baolife_store_batch_keys", "counter", "Logins' lookups and claims sent by those calls"),
)


def families(store: Store, up: bool) -> Iterator[Metric]:
    """``up``: the store took the last probe write (see :mod:`baolife.health`)."""
    yield gauge("baolife_store_up", "1 when the store took the last probe write", 1.0 if up else 0.0)
    read = getattr(store, "statistics", None)  # a test's stand-in store may not count
    if read is not None:
        yield from optional_families(read(), STORE_OPTIONAL)
