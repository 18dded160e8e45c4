"""Single-flight: identical requests in flight share one upstream call.

The first caller of a key starts the *flight*, a task in the nursery given
to :meth:`SingleFlight.bind` (the provider's, so a shutdown cancels it);
later callers of the same key wait for the same result. A caller that is
cancelled (its player left, its deadline passed) stops waiting; when the
last caller has gone the flight is cancelled too, so no upstream call runs
for nobody. The number of flights is bounded by the number of callers,
that is by the AI workers.

A flight's outcome is the reply text or a :class:`~baolife.ai.reply.Fallback`,
and every waiter gets the same one. A fault in ``fetch`` (an exception) is
logged once and every waiter gets the fallback ``error``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

import attrs
import structlog
import trio

from .reply import Fallback, FallbackReason

__all__ = ["FlightStatistics", "SingleFlight"]

log = structlog.get_logger("baolife.ai")


@attrs.define(eq=False)
class _Flight:
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    waiters: int = 0
    # Until fetch returns: a flight cancelled by shutdown ends as a fault.
    outcome: str | Fallback = Fallback(FallbackReason.ERROR)


@attrs.frozen
class FlightStatistics:
    in_flight: int
    started: int
    shared: int


class SingleFlight:
    """See the module docstring."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        self._nursery: trio.Nursery | None = None
        self.started = 0
        self.shared = 0

    def bind(self, nursery: trio.Nursery) -> None:
        """Run flights in ``nursery`` from now on."""
        self._nursery = nursery

    def statistics(self) -> FlightStatistics:
        return FlightStatistics(in_flight=len(self._flights), started=self.started, shared=self.shared)

    async def run(self, key: Hashable, fetch: Callable[[], Awaitable[str | Fallback]]) -> tuple[str | Fallback, bool]:
        """The outcome of ``fetch`` for ``key``, and whether it was shared
        (True: another caller's flight answered)."""
        if self._nursery is None:
            raise RuntimeError("SingleFlight.run before bind()")
        flight = self._flights.get(key)
        shared = flight is not None
        if flight is None:
            flight = self._flights[key] = _Flight()
            self.started += 1
            self._nursery.start_soon(self._fly, key, flight, fetch)
        else:
            self.shared += 1
        flight.waiters += 1
        try:
            await flight.done.wait()
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.done.is_set():
                # Nobody wants the answer any more: stop paying for it.
                flight.scope.cancel()
                if self._flights.get(key) is flight:
                    del self._flights[key]
        return flight.outcome, shared

    async def _fly(self, key: Hashable, flight: _Flight, fetch: Callable[[], Awaitable[str | Fallback]]) -> None:
        try:
            with flight.scope:
                try:
                    flight.outcome = await fetch()
                except Exception:  # a fault in our code: every waiter still gets a reply
                    log.exception("npc_flight_failed")
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.done.set()
