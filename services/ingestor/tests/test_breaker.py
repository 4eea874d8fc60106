"""The circuit breaker's states, with a hand-driven clock."""

from __future__ import annotations

from tickwire.ingestor.breaker import CircuitBreaker, CircuitState, Permit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, threshold: int = 3, reset: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker(threshold, reset, clock=clock)


def test_opens_after_consecutive_failures_only():
    clock = Clock()
    cb = breaker(clock)
    for _ in range(2):
        assert cb.acquire() is Permit.FULL
        cb.record_failure()
    cb.record_success()  # a success in between resets the count
    for _ in range(2):
        cb.record_failure()
    assert cb.state is CircuitState.CLOSED
    cb.record_failure()
    assert cb.state is CircuitState.OPEN
    assert cb.acquire() is None


def test_half_open_lets_one_probe_through_after_the_cool_down():
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 29.9
    assert cb.acquire() is None
    clock.now += 0.1
    assert cb.state is CircuitState.HALF_OPEN
    assert cb.acquire() is Permit.PROBE
    assert cb.acquire() is None  # only one probe in flight


def test_probe_success_closes():
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 30
    assert cb.acquire() is Permit.PROBE
    cb.record_success()
    assert cb.state is CircuitState.CLOSED and cb.consecutive_failures == 0
    assert cb.acquire() is Permit.FULL


def test_probe_failure_reopens_for_a_full_cool_down():
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 30
    assert cb.acquire() is Permit.PROBE
    cb.record_failure()
    assert cb.state is CircuitState.OPEN
    clock.now += 29
    assert cb.acquire() is None
    clock.now += 1
    assert cb.acquire() is Permit.PROBE


def test_release_frees_the_probe_without_a_verdict():
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 30
    assert cb.acquire() is Permit.PROBE
    cb.release()
    assert cb.state is CircuitState.HALF_OPEN
    assert cb.acquire() is Permit.PROBE


def test_gauge_values():
    assert [s.gauge for s in (CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN)] == [0, 1, 2]
