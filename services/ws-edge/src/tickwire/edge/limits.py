"""Pure rate-limiting arithmetic: token buckets, per-address admission, per-symbol throttles.

No I/O here; time is passed in (monotonic seconds) so the logic is testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens per second, holding at most `burst`. take() spends one if it can."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@dataclass
class AddressAdmission:
    """Caps open connections and the rate of new ones per client address.

    A refused attempt costs nothing: it is answered before the WebSocket upgrade.
    Buckets of addresses with no open connection are forgotten once full again.
    """

    max_connections: int
    rate: float
    burst: float
    open: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def admit(self, address: str, now: float) -> str | None:
        """None when admitted (the caller must `release` later), else the reason."""
        if self.open.get(address, 0) >= self.max_connections:
            return "too many connections from this address"
        bucket = self.buckets.setdefault(address, TokenBucket(self.rate, self.burst))
        if not bucket.take(now):
            return "connecting too fast"
        self.open[address] = self.open.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        left = self.open.get(address, 1) - 1
        if left > 0:
            self.open[address] = left
        else:
            self.open.pop(address, None)

    def forget_idle(self, now: float) -> None:
        for address in [a for a, b in self.buckets.items()
                        if a not in self.open and b.tokens + (now - b.stamp) * b.rate >= b.burst]:
            del self.buckets[address]


class Throttle:
    """At most `max_hz` deliveries per second per symbol, always the newest value:
    `due_at` says when a symbol may next be sent; conflation keeps only the newest."""

    __slots__ = ("_interval", "_next")

    def __init__(self) -> None:
        self._interval: dict[str, float] = {}
        self._next: dict[str, float] = {}

    def set(self, symbol: str, max_hz: float | None) -> None:
        if max_hz is None:
            self._interval.pop(symbol, None)
            self._next.pop(symbol, None)
        else:
            self._interval[symbol] = 1.0 / max_hz

    def clear(self, symbol: str) -> None:
        self.set(symbol, None)

    def __bool__(self) -> bool:
        return bool(self._interval)

    def limits(self, symbol: str) -> bool:
        return symbol in self._interval

    def due_at(self, symbol: str) -> float:
        return self._next.get(symbol, 0.0)

    def sent(self, symbol: str, now: float) -> None:
        interval = self._interval.get(symbol)
        if interval is not None:
            self._next[symbol] = now + interval


class SubjectLimits:
    """Per token subject on one edge: open connections, and one message bucket shared by
    all of them, so ten tabs of one user get one user's allowance, not ten.

    A subject's bucket lives while it holds a connection; anonymous clients (subject None)
    are limited per connection and per address only.
    """

    __slots__ = ("_open", "_buckets", "_burst_factor")

    def __init__(self, burst_factor: float = 2.0) -> None:
        self._open: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._burst_factor = burst_factor

    def admit(self, subject: str | None, max_connections: int) -> bool:
        """True when admitted (the caller must `release` later)."""
        if subject is None:
            return True
        if self._open.get(subject, 0) >= max_connections:
            return False
        self._open[subject] = self._open.get(subject, 0) + 1
        return True

    def release(self, subject: str | None) -> None:
        if subject is None:
            return
        left = self._open.get(subject, 1) - 1
        if left > 0:
            self._open[subject] = left
        else:
            self._open.pop(subject, None)
            self._buckets.pop(subject, None)

    def open_connections(self, subject: str) -> int:
        return self._open.get(subject, 0)

    def bucket(self, subject: str | None, rate: float) -> TokenBucket | None:
        """The subject's shared message bucket (None for anonymous clients)."""
        if subject is None:
            return None
        burst = max(1.0, rate * self._burst_factor)
        bucket = self._buckets.get(subject)
        if bucket is None:
            bucket = self._buckets[subject] = TokenBucket(rate, burst)
        elif bucket.rate != rate:
            # A token of another tier re-rates the one bucket, keeping what it holds: a new
            # full bucket per change would let alternating tokens refill it at will.
            bucket.rate, bucket.burst = rate, burst
            bucket.tokens = min(bucket.tokens, burst)
        return bucket
