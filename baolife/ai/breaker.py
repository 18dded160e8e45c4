"""The circuit breaker in front of the upstream, and its Retry-After hold.

States::

    closed ──(failures consecutive failed jobs)──▶ open
    open ──(cooldown passed: the next job is the probe)──▶ half_open
    half_open ──(probe succeeds)──▶ closed
    half_open ──(probe fails)──▶ open, with the cooldown doubled (up to 8x)

A *failed job* is one whose upstream attempts all failed (retries spent, an
error not worth retrying, or its deadline passed in a call). Counting jobs
rather than attempts is deliberate: when half of the attempts fail, two
retries still answer 87.5% of jobs, and a breaker counting attempts opens on
random streaks and sheds an upstream that works. Any successful attempt
closes the breaker.

Independently of the state, :meth:`hold` (from a 429's ``Retry-After``)
refuses calls until a time: the upstream asked us to wait, so no job may
call before then.

Time is a value passed in (``trio.current_time()`` by the caller), so the
breaker is plain synchronous code and tests drive it with numbers.
"""

from __future__ import annotations

import attrs

from .reply import FallbackReason

__all__ = ["BreakerStatistics", "CircuitBreaker"]

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
MAX_COOLDOWN_FACTOR = 8


@attrs.frozen
class BreakerStatistics:
    state: str
    consecutive_failures: int
    opens: int
    refused: int
    hold_until: float


class CircuitBreaker:
    """See the module docstring. ``failures`` consecutive failed jobs open it
    for ``cooldown`` seconds."""

    def __init__(self, *, failures: int, cooldown: float) -> None:
        self.threshold = failures
        self.base_cooldown = cooldown
        self.cooldown = cooldown
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.hold_until = float("-inf")
        self.probing = False
        self.opens = 0
        self.refused = 0

    def statistics(self) -> BreakerStatistics:
        return BreakerStatistics(
            state=self.state,
            consecutive_failures=self.consecutive,
            opens=self.opens,
            refused=self.refused,
            hold_until=self.hold_until,
        )

    def allow(self, now: float) -> FallbackReason | None:
        """None if a call may be made now, else the fallback reason
        (``RATE_LIMITED`` or ``BREAKER_OPEN``). In ``half_open`` the first
        caller gets the probe; it must end with :meth:`success`,
        :meth:`failure` or :meth:`abandon`."""
        if now < self.hold_until:
            self.refused += 1
            return FallbackReason.RATE_LIMITED
        if self.state == CLOSED:
            return None
        if self.state == OPEN and now >= self.opened_at + self.cooldown:
            self.state = HALF_OPEN
            self.probing = False
        if self.state == HALF_OPEN and not self.probing:
            self.probing = True
            return None
        self.refused += 1
        return FallbackReason.BREAKER_OPEN

    def success(self) -> None:
        """An attempt succeeded: the upstream works."""
        self.state = CLOSED
        self.consecutive = 0
        self.probing = False
        self.cooldown = self.base_cooldown

    def failure(self, now: float) -> None:
        """A job failed upstream (see the module docstring)."""
        if self.state == HALF_OPEN:
            self.cooldown = min(self.cooldown * 2, self.base_cooldown * MAX_COOLDOWN_FACTOR)
            self._open(now)
            return
        if self.state == OPEN:
            return  # a job that started before the breaker opened
        self.consecutive += 1
        if self.consecutive >= self.threshold:
            self._open(now)

    def abandon(self) -> None:
        """A probe ended without a verdict (its player left): let the next
        job probe instead."""
        if self.state == HALF_OPEN:
            self.probing = False

    def hold(self, until: float) -> None:
        """Refuse calls until ``until`` (a 429's Retry-After)."""
        self.hold_until = max(self.hold_until, until)

    def _open(self, now: float) -> None:
        self.state = OPEN
        self.opened_at = now
        self.probing = False
        self.opens += 1
