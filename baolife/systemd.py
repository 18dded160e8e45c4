"""systemd's notify protocol (sd_notify(3)) in a few lines of our own.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``, a datagram socket
(a leading ``@`` names an abstract socket). The server sends ``READY=1`` once
it listens, ``WATCHDOG=1`` from the tick loop after a tick really ran (so a
stuck loop gets the process restarted), ``STATUS=...`` with its summary and
``STOPPING=1`` when the drain starts.

Sends never block: the socket is non-blocking and a datagram that does not
fit is dropped and counted (systemd reads them at once; a full buffer means
it is busy, and the next watchdog ping follows soon). Without
``$NOTIFY_SOCKET`` every call is a no-op, so the server runs the same
outside systemd.

Why not the ``sdnotify`` package: unmaintained, and it swallows errors.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]


class Notifier:
    """Sends notify messages to ``address``; see the module docstring.

    ``watchdog_usec`` is systemd's ``$WATCHDOG_USEC`` (0: no watchdog).
    :meth:`watchdog` sends at most every quarter of it, which keeps a ping
    inside every half interval even when a tick runs late.
    """

    def __init__(self, address: str | None = None, *, watchdog_usec: int = 0) -> None:
        self.address = address or None
        self.watchdog_every = watchdog_usec / 4e6 if watchdog_usec > 0 and self.address else 0.0
        self.sent = 0
        self.failed = 0
        self.last_error = ""
        self._next_watchdog = 0.0
        self._sock: socket.socket | None = None
        self._target = ""
        if self.address:
            # "@name" is Linux's abstract namespace: a name that starts with NUL.
            self._target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @classmethod
    def from_environ(cls, env: Mapping[str, str], pid: int | None = None) -> Notifier:
        """The notifier systemd asked for in ``env`` (``NOTIFY_SOCKET``,
        ``WATCHDOG_USEC``; the watchdog only if ``WATCHDOG_PID`` is unset or
        is ``pid``, this process). A malformed value means no watchdog."""
        address = env.get("NOTIFY_SOCKET", "")
        usec = 0
        watchdog_pid = env.get("WATCHDOG_PID", "")
        if not watchdog_pid or watchdog_pid == str(pid if pid is not None else os.getpid()):
            try:
                usec = int(env.get("WATCHDOG_USEC", "0"))
            except ValueError:
                usec = 0
        return cls(address or None, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to talk to."""
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value`` each) as one datagram. False when
        there is no socket or the send failed (counted in :attr:`failed`)."""
        if self._sock is None:
            return False
        data = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8", "replace")
        try:
            self._sock.sendto(data, self._target)
        except OSError as exc:  # BlockingIOError included: never wait for systemd
            self.failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        """The service is up: listeners open, tick loop running."""
        return self.notify("READY=1", *((f"STATUS={status}",) if status else ()))

    def stopping(self, status: str = "") -> bool:
        """The graceful shutdown has begun."""
        return self.notify("STOPPING=1", *((f"STATUS={status}",) if status else ()))

    def status(self, text: str) -> bool:
        """A one-line status for ``systemctl status``."""
        return self.notify(f"STATUS={text}")

    def watchdog(self, now: float) -> None:
        """Called after every tick with the current time (seconds): pings the
        watchdog when a quarter interval has passed since the last ping. One
        float comparison when nothing is due."""
        if self.watchdog_every and now >= self._next_watchdog:
            self._next_watchdog = now + self.watchdog_every
            self.notify("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket; later calls are no-ops."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
