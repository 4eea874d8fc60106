"""The synthetic market: symbol names, who watches what (Zipf popularity), tick weights.

Deterministic for a given seed, so tickwire and the baseline face the same clients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def symbol_names(count: int) -> list[str]:
    """Four-letter, ticker-like, distinct names (the length of real US tickers)."""
    names = []
    for i in range(count):
        letters, n = [], i
        for _ in range(4):
            n, r = divmod(n, 26)
            letters.append(chr(ord("A") + r))
        names.append("".join(reversed(letters)))
    return names


def zipf_weights(count: int, exponent: float) -> np.ndarray:
    """Weight of rank 1..count proportional to 1 / rank**exponent (0 is uniform)."""
    weights = 1.0 / np.arange(1, count + 1, dtype=float) ** exponent
    return weights / weights.sum()


@dataclass(frozen=True)
class Workload:
    symbols: list[str]
    subscriptions: list[list[int]]  # per client: symbol indexes, distinct
    tick_weights: np.ndarray  # share of the aggregate tick rate per symbol

    @classmethod
    def build(cls, *, clients: int, symbols: int, per_client: int, popularity: float,
              tick_skew: float, seed: int) -> Workload:
        if per_client > symbols:
            raise ValueError(f"--per-client {per_client} exceeds --symbols {symbols}")
        rng = np.random.default_rng(seed)
        popular = zipf_weights(symbols, popularity)
        subscriptions = [sorted(int(i) for i in rng.choice(symbols, per_client, replace=False,
                                                          p=popular))
                         for _ in range(clients)]
        return cls(symbol_names(symbols), subscriptions, zipf_weights(symbols, tick_skew))

    @classmethod
    def partitioned(cls, *, clients: int, symbols: int) -> Workload:
        """Every symbol watched by exactly one client, ticking equally often: each tick is
        one delivery, so what is measured is how fast a server takes ticks in."""
        parts = np.array_split(np.arange(symbols), min(clients, symbols))
        return cls(symbol_names(symbols), [part.tolist() for part in parts],
                   zipf_weights(symbols, 0.0))

    def watchers(self) -> np.ndarray:
        counts = np.zeros(len(self.symbols), dtype=np.int64)
        for subs in self.subscriptions:
            counts[subs] += 1
        return counts

    def fanout(self) -> float:
        """Deliveries one published tick causes on average (what delivered/s ÷ ticks/s
        should be when nothing is lost)."""
        return float((self.tick_weights * self.watchers()).sum())
