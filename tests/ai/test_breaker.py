"""The circuit breaker as a state machine, driven with explicit times."""

from __future__ import annotations

from baolife.ai.breaker import CircuitBreaker


def opened(failures: int = 3, cooldown: float = 10.0, now: float = 0.0) -> CircuitBreaker:
    b = CircuitBreaker(failures=failures, cooldown=cooldown)
    for _ in range(failures):
        assert b.allow(now) is None
        b.failure(now)
    assert b.state == "open"
    return b


def test_it_opens_only_after_consecutive_failed_jobs() -> None:
    b = CircuitBreaker(failures=3, cooldown=10)
    b.failure(0)
    b.failure(0)
    b.success()  # a success in between starts the count again
    b.failure(0)
    b.failure(0)
    assert b.state == "closed" and b.allow(1) is None
    b.failure(1)
    assert b.state == "open"
    assert b.allow(2) == "breaker_open" and b.allow(10.9) == "breaker_open"
    assert b.statistics().opens == 1 and b.statistics().refused == 2


def test_after_the_cooldown_exactly_one_probe_goes_and_its_verdict_decides() -> None:
    b = opened(now=0)
    assert b.allow(10) is None  # the probe
    assert b.state == "half_open"
    assert b.allow(10) == "breaker_open"  # everyone else waits for its verdict
    b.success()
    assert b.state == "closed" and b.allow(10) is None


def test_a_failed_probe_reopens_with_a_longer_cooldown_up_to_a_cap() -> None:
    b = opened(cooldown=10, now=0)
    now = 0.0
    for expected in (20, 40, 80, 80):
        now += b.cooldown
        assert b.allow(now) is None
        b.failure(now)
        assert b.state == "open" and b.cooldown == expected
        assert b.allow(now + expected - 0.01) == "breaker_open"
    b.success()
    assert b.cooldown == 10


def test_an_abandoned_probe_lets_the_next_job_probe() -> None:
    b = opened(now=0)
    assert b.allow(10) is None
    b.abandon()
    assert b.allow(10) is None  # a new probe, not a stuck half-open breaker
    assert b.allow(10) == "breaker_open"


def test_a_retry_after_holds_every_call_whatever_the_state() -> None:
    b = CircuitBreaker(failures=3, cooldown=10)
    b.hold(5.0)
    b.hold(3.0)  # a shorter hold does not shorten the longer one
    assert b.allow(4.9) == "rate_limited"
    assert b.allow(5.0) is None
    assert b.state == "closed"


def test_late_failures_of_calls_started_before_opening_do_not_extend_it() -> None:
    b = opened(cooldown=10, now=0)
    b.failure(9)
    assert b.allow(10) is None
