"""Operator tokens: random secrets the operators hold; the server is
configured with their SHA-256 only (``BAOLIFE_ADMIN_TOKENS``), each with a
name (the audit log's "who") and a role.

``viewer`` reads (search, a player's page, figures, the audit log);
``operator`` also acts (kick, ban, mute, export, erase, announce, budget,
drain). Exporting is an operator action: it hands out a player's personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ..config import AdminToken

__all__ = ["OPERATOR", "VIEWER", "TokenTable", "new_token", "token_line"]

VIEWER = "viewer"
OPERATOR = "operator"
# Recognisable in a leak scan, and never a player token (those have none).
TOKEN_PREFIX = "bla_"  # noqa: S105 - a prefix, not a secret
MAX_TOKEN_CHARS = 512


def new_token() -> str:
    """A fresh operator token: 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """The hex SHA-256 of a token, as configured."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_line(name: str, role: str, token: str) -> str:
    """The ``BAOLIFE_ADMIN_TOKENS`` entry for ``token``."""
    return f"{name}:{role}:{digest(token)}"


class TokenTable:
    """The configured tokens; :meth:`check` finds the one a request holds."""

    def __init__(self, tokens: tuple[AdminToken, ...]) -> None:
        self._by_digest = {bytes.fromhex(t.sha256): t for t in tokens}

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    def check(self, authorization: str | None) -> AdminToken | None:
        """The token of an ``Authorization: Bearer <token>`` header, or None."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        wanted = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        # A dict lookup by digest, then a constant-time compare: what leaks by
        # timing is about the digest, which an attacker cannot steer.
        found = self._by_digest.get(wanted)
        if found is None or not hmac.compare_digest(bytes.fromhex(found.sha256), wanted):
            return None
        return found
