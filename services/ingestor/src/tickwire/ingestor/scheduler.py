"""Which of this replica's symbols to fetch now, in what order, and when data is stale.

Due-ness. A symbol's age is the time since any replica last got a quote for it from a
provider (`fetchedAt`, shared in Redis, so it survives a takeover or restart; a quote that
did not change still counts as fetched). A symbol is due when its age reaches the poll
interval, and, after a failed attempt, when the poll interval has passed since that attempt.
So a replica that takes a symbol over, or restarts, resumes the previous owner's cadence:
a fresh cached quote is not refetched early, and nothing waits longer than one interval.
A symbol no provider has ever answered for is due at once.

Coalescing. When a round starts because some symbols are due, symbols that are at least
half an interval old join it, so that symbols which became active at different moments
converge on one cadence and share batch requests instead of drifting into one request each.
A symbol is thus fetched at most half an interval early, once, when it joins.

Priority. When the rate budget cannot cover every due symbol, the budget goes first to the
highest `subscribers × age / poll interval` (never-fetched symbols first, by subscribers):
busy symbols are refreshed most, but a quiet symbol that has waited long enough gets its
turn, so nothing starves.

Staleness. A symbol is stale once an attempt failed on every provider (an error, or an open
circuit) while its newest data is older than the freshness window. It stops being stale when
a quote arrives. The caller publishes each change once (DATA_STALE / recovered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


COALESCE = 0.5  # of the poll interval: how early a symbol may join a starting round


@dataclass
class SymbolState:
    subscribers: int
    fetched_at: float | None = None   # wall clock of the newest quote, from any replica
    failed_at: float | None = None    # wall clock of this replica's last failed attempt
    stale: bool = False
    loaded: bool = False              # shared state read from Redis since it became ours

    def age(self, now: float) -> float:
        return math.inf if self.fetched_at is None else max(0.0, now - self.fetched_at)


class Scheduler:
    def __init__(self, poll_interval: float, freshness_seconds: float):
        self.poll_interval = poll_interval
        self.freshness_seconds = freshness_seconds
        self.symbols: dict[str, SymbolState] = {}

    def sync(self, owned: dict[str, int]) -> tuple[list[str], list[str]]:
        """Adopt the replica's current symbols (symbol → subscribers); returns (added, removed)."""
        removed = [s for s in self.symbols if s not in owned]
        for symbol in removed:
            del self.symbols[symbol]
        added = []
        for symbol, subscribers in owned.items():
            state = self.symbols.get(symbol)
            if state is None:
                self.symbols[symbol] = SymbolState(subscribers)
                added.append(symbol)
            else:
                state.subscribers = subscribers
        return added, removed

    def unloaded(self) -> list[str]:
        return [s for s, state in self.symbols.items() if not state.loaded]

    def load(self, symbol: str, fetched_at: float | None, stale: bool) -> None:
        """The shared state of a symbol that just became ours."""
        state = self.symbols.get(symbol)
        if state is not None:
            state.fetched_at, state.stale, state.loaded = fetched_at, stale, True

    def is_due(self, symbol: str, now: float, early: float = 0.0) -> bool:
        """Due now, or within `early` seconds."""
        state = self.symbols[symbol]
        if not state.loaded:
            return False
        wait = self.poll_interval - early
        if state.failed_at is not None and now - state.failed_at < wait:
            return False
        return state.age(now) >= wait

    def priority(self, symbol: str, now: float) -> tuple[float, int, str]:
        """Sort key, smallest first."""
        state = self.symbols[symbol]
        weight = max(1, state.subscribers)
        age = state.age(now)
        score = math.inf if math.isinf(age) else weight * age / self.poll_interval
        return (-score, -weight, symbol)

    def due(self, now: float, busy: set[str] = frozenset()) -> list[str]:
        """Due symbols not already being fetched, with those that may join them, most
        deserving first; empty while none is due."""
        idle = [s for s in self.symbols if s not in busy]
        if not any(self.is_due(s, now) for s in idle):
            return []
        ready = [s for s in idle if self.is_due(s, now, early=self.poll_interval * COALESCE)]
        return sorted(ready, key=lambda s: self.priority(s, now))

    def fetched(self, symbol: str, now: float) -> bool:
        """A quote arrived; True if the symbol was stale (a recovery to announce)."""
        state = self.symbols.get(symbol)
        if state is None:
            return False
        was_stale = state.stale
        state.fetched_at, state.failed_at, state.stale = now, None, False
        return was_stale

    def failed(self, symbol: str, now: float) -> bool:
        """Every provider failed for the symbol; True if it just became stale."""
        state = self.symbols.get(symbol)
        if state is None:
            return False
        state.failed_at = now
        if state.stale or state.age(now) < self.freshness_seconds:
            return False
        state.stale = True
        return True

    def postpone(self, symbol: str, now: float) -> None:
        """Try again after a poll interval (the attempt failed for a reason of our own)."""
        state = self.symbols.get(symbol)
        if state is not None:
            state.failed_at = now

    def unflag(self, symbols: list[str]) -> None:
        """Undo `failed` flagging these stale (the flag could not be shared)."""
        for symbol in symbols:
            if (state := self.symbols.get(symbol)) is not None:
                state.stale = False

    def stale_symbols(self) -> list[str]:
        return sorted(s for s, state in self.symbols.items() if state.stale)
