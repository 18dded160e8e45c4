"""What the front proxy says of itself, checked by every worker.

The shipped proxy configuration (deploy/haproxy/haproxy.cfg) adds two
headers to every WebSocket handshake it forwards: ``X-BaoLife-Route:
player-id`` (it sends a player to a worker by the player's id) and
``X-BaoLife-Store: mysql`` (the kind of store every worker behind it
shares). A worker that gets a handshake from one of its trusted proxies
(``BAOLIFE_TRUSTED_PROXIES``) without the first, or with a store other than
its own (a worker left on the SQLite default while the others share MySQL:
its players would live in a database of their own), reports it on
``/readyz`` for :data:`REMEMBER` seconds, so the proxy takes it out and
the operator reads why, rather than the cluster splitting in silence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio

from ..config import within

__all__ = ["REMEMBER", "ProxyCheck"]

REMEMBER = 60.0


class ProxyCheck:
    """Checks each handshake's proxy headers; :meth:`problems` for /readyz."""

    def __init__(self, trusted: tuple[Any, ...], store_kind: str) -> None:
        self.trusted = trusted
        self.store_kind = store_kind
        self.unrouted_at: float | None = None
        self.mismatch: tuple[float, str] | None = None

    def handshake(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """A WebSocket handshake from TCP peer ``peer`` with ``headers``."""
        if not self.trusted or not within(peer, self.trusted):
            return
        route = store = None
        for name, value in headers:
            lower = name.lower()
            if lower == b"x-baolife-route":
                route = value.decode("latin-1").strip().lower()
            elif lower == b"x-baolife-store":
                store = value.decode("latin-1").strip().lower()
        now = trio.current_time()
        if route != "player-id":
            self.unrouted_at = now
        if store is not None and store != self.store_kind:
            self.mismatch = (now, store)

    def problems(self) -> list[str]:
        now = trio.current_time()
        out = []
        if self.unrouted_at is not None and now - self.unrouted_at < REMEMBER:
            out.append(
                "the front proxy does not route players by id (no X-BaoLife-Route: player-id on its"
                " WebSocket requests; see deploy/haproxy/haproxy.cfg)"
            )
        if self.mismatch is not None and now - self.mismatch[0] < REMEMBER:
            out.append(
                f"the front proxy's workers share a {self.mismatch[1]} store but this worker's is"
                f" {self.store_kind} (BAOLIFE_DB_URL): its players would live apart"
            )
        return out
