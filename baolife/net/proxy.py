"""Client addresses behind a front proxy.

Behind a front proxy every TCP peer is the proxy. When the peer is within
``trusted_proxies``, the client's address is the right-most entry of the
handshake's ``X-Forwarded-For`` that is not itself a trusted proxy, so per-IP
limits and logs see players, not the proxy. Entries left of it are the
client's own to write and are never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from ..config import within

__all__ = ["client_address"]


def client_address(peer: str, headers: Iterable[tuple[bytes, bytes]], trusted: tuple[Any, ...]) -> str:
    """The address per-IP limits count: the TCP peer, unless the peer is a
    trusted front proxy; then the right-most address of X-Forwarded-For that
    is not itself a trusted proxy. Nothing a client sends directly can
    change its address.

    Args:
        peer: the TCP peer's address.
        headers: the handshake's headers (name, value), names in any case.
        trusted: the networks of the trusted proxies (``ipaddress`` networks).
    """
    if not trusted or not within(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops.extend(h.strip() for h in value.decode("latin-1").split(","))
    for hop in reversed(hops):
        if not within(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer
