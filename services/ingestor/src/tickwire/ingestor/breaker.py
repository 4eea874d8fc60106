"""A per-provider circuit breaker (one per replica: it guards this process's requests).

closed ──N consecutive failures──▶ open ──cool-down──▶ half-open ──probe ok──▶ closed
                                     ▲                     │
                                     └────probe failed─────┘

While open, the provider is skipped (its symbols fail over to the next provider). After the
cool-down one request, the probe, is let through; its outcome closes or reopens the circuit.
Rate limiting is neither success nor failure: it frees the probe slot and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum


class CircuitState(Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """The value exported as tickwire_ingestor_circuit_state."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


class Permit(Enum):
    """What `acquire` allows: the full request load, or a single probe request."""

    FULL = "full"
    PROBE = "probe"


class CircuitBreaker:
    def __init__(self, failure_threshold: int, reset_seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        if failure_threshold < 1 or reset_seconds <= 0:
            raise ValueError("failure_threshold >= 1 and reset_seconds > 0 required")
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> CircuitState:
        """The state, with an open circuit past its cool-down reported as half-open."""
        if self._state is CircuitState.OPEN and self._cooled_down():
            return CircuitState.HALF_OPEN
        return self._state

    def acquire(self) -> Permit | None:
        """May a request go out now? None: no (open, or a probe is already in flight)."""
        if self._state is CircuitState.OPEN:
            if not self._cooled_down():
                return None
            self._state = CircuitState.HALF_OPEN
        if self._state is CircuitState.HALF_OPEN:
            if self._probing:
                return None
            self._probing = True
            return Permit.PROBE
        return Permit.FULL

    def record_success(self) -> None:
        self._state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self._probing = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self._state is CircuitState.HALF_OPEN or (
                self._state is CircuitState.CLOSED
                and self.consecutive_failures >= self.failure_threshold):
            self._open()
        self._probing = False

    def release(self) -> None:
        """The permitted request told nothing about health (rate limited, no budget)."""
        self._probing = False

    def _open(self) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_seconds
