"""The bus: events every worker of a cluster sees, its own included.

A worker publishes an event (an admin's ban, a login that takes a player
from another worker, an announcement) and every worker sharing the store,
itself included, receives it once through :meth:`Bus.run`'s handler, in
the order published. :class:`LocalBus` is the bus of one process alone
(the default, and the one the SQLite store can have); cluster buses carry
the same events across processes.

Events are small and JSON-safe: ``kind`` names what happened, ``player``
whom it concerns (or None), ``body`` the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import trio

__all__ = ["Bus", "BusEvent", "Handler", "LocalBus"]


@attrs.frozen
class BusEvent:
    kind: str
    player: int | None = None
    body: dict[str, Any] = attrs.field(factory=dict)
    origin: str = ""


Handler = Callable[[BusEvent], Awaitable[None] | None]


class Bus(Protocol):
    async def publish(self, event: BusEvent) -> None:
        """Send ``event`` to every worker (this one included)."""

    async def run(self, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Call ``handler`` for every event published from now on, until cancelled."""


class LocalBus:
    """The bus of a single process: events go straight to its own handler."""

    def __init__(self, origin: str = "local", buffer: int = 1024) -> None:
        self.origin = origin
        self._send, self._receive = trio.open_memory_channel[BusEvent](buffer)

    async def publish(self, event: BusEvent) -> None:
        await self._send.send(attrs.evolve(event, origin=event.origin or self.origin))

    async def run(self, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for event in self._receive:
            result = handler(event)
            if result is not None:
                await result
