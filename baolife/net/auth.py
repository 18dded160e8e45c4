"""Logging a connection in: ``register``, ``login`` and ``resume``.

These are the only messages that need the database before the tick loop can
act on them. Each runs in a task of the connection's (its reader task over
TLS, a login task on plain TCP: :mod:`baolife.net.reading`) under a deadline, and
ends by putting into the inbox either an ``Attach`` (the player is loaded and
held) or the ``error`` to answer with. Tokens are 256 random bits; only their
SHA-256 is stored.
"""

from __future__ import annotations

import secrets
import time
from collections import deque

import cachetools
import structlog
import trio

from .. import protocol as wire
from ..db.store import Store, StoreCorrupt, StoreError, hash_token
from ..players import Directory, DirectoryFull
from ..tick.loop import Attach, Deliver, Inbox, Recipient

__all__ = ["Auth", "RegistrationLimiter", "new_token"]

log = structlog.get_logger("baolife.auth")


def new_token() -> str:
    """A login token: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


class RegistrationLimiter:
    """At most ``per_hour`` registrations per client address in any hour.
    Tracks at most ``max_addresses`` addresses (least recently used dropped)."""

    def __init__(self, per_hour: int, max_addresses: int = 100_000) -> None:
        self.per_hour = per_hour
        self.refused = 0
        self._seen: cachetools.LRUCache[str, deque[float]] = cachetools.LRUCache(max_addresses)

    def allow(self, address: str, now: float) -> bool:
        stamps = self._seen.get(address)
        if stamps is None:
            stamps = self._seen[address] = deque(maxlen=self.per_hour)
        while stamps and now - stamps[0] >= 3600.0:
            stamps.popleft()
        if len(stamps) >= self.per_hour:
            self.refused += 1
            return False
        stamps.append(now)
        return True


class Auth:
    """Runs the login messages of connections; see the module docstring."""

    def __init__(
        self, store: Store, directory: Directory, inbox: Inbox, *, register_per_ip_hour: int, timeout: float
    ) -> None:
        self.store = store
        self.directory = directory
        self.inbox = inbox
        self.timeout = timeout
        self.registrations = RegistrationLimiter(register_per_ip_hour)

    def _refuse(self, session: Recipient, code: str, message: str, ref: object) -> None:
        self.inbox.put(Deliver(session, wire.Error(code=code, message=message, ref=ref)), force=True)

    async def handle(self, session: Recipient, remote: str, cmd: wire.Command) -> None:
        """Answer a register, login or resume message of ``session`` (a
        command that does not need login, see ``Command.needs_login``)."""
        try:
            with trio.fail_after(self.timeout):
                if isinstance(cmd, wire.Register):
                    await self._register(session, remote, cmd)
                elif isinstance(cmd, (wire.Login, wire.Resume)):
                    await self._login(session, cmd)
        except (trio.TooSlowError, DirectoryFull) as exc:
            log.warning("login_busy", kind=cmd.type, reason=type(exc).__name__)
            self._refuse(session, "busy", "the server cannot load players right now; try again in a moment", cmd.ref)
        except StoreCorrupt as exc:
            # Also a save the model cannot read: the directory raises it as StoreCorrupt.
            log.error("login_corrupt", kind=cmd.type, error=str(exc))
            self._refuse(session, "internal", "your saved life cannot be read; the operators have been told", cmd.ref)
        except StoreError as exc:
            log.warning("login_store_unavailable", kind=cmd.type, error=str(exc))
            self._refuse(session, "busy", "the database is unavailable; try again in a moment", cmd.ref)

    async def _register(self, session: Recipient, remote: str, cmd: wire.Register) -> None:
        if not self.registrations.allow(remote, trio.current_time()):
            self._refuse(session, "rate_limited", "too many new players from your address; try again later", cmd.ref)
            return
        token = new_token()
        entry = await self.directory.register(cmd.name, hash_token(token))
        pid = entry.player.id
        log.info("registered", player=pid)
        # An Attach always goes into the inbox (it is bookkeeping, bounded by
        # the connections): the tick loop takes the directory hold over.
        self.inbox.put(Attach(session, entry.player, ref=cmd.ref, token=token))

    async def _login(self, session: Recipient, cmd: wire.Login | wire.Resume) -> None:
        # One round trip for the account and its ban (baolife.admin): read at
        # every login, a ban set on any worker holds here at once, with
        # nothing to keep in sync. The claim is the login's other store call.
        found = await self.store.find_login(hash_token(cmd.token))
        if found is None:
            self._refuse(session, "invalid_token", "no player has that token", cmd.ref)
            return
        pid, ban = found.player_id, found.ban
        if ban is not None and (ban.until is None or ban.until > time.time()):
            log.info("login_banned", player=pid, until=ban.until)
            error = wire.Error(
                code="banned",
                message="an operator banned this player" + ("" if ban.until is None else " until the time given"),
                ref=cmd.ref,
                reason=ban.reason,
                until=ban.until,
            )
            self.inbox.put(Deliver(session, error), force=True)
            return
        entry = await self.directory.acquire(pid)
        resume = cmd.last_seq if isinstance(cmd, wire.Resume) else None
        self.inbox.put(Attach(session, entry.player, ref=cmd.ref, resume=resume))
