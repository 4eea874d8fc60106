"""The offline stream: trades of a random walk for every wanted symbol, no network.

Each symbol trades `trades_per_second` times a second on average (Poisson arrivals), from
the price its session aggregate holds, in sizes shaped like an equity tape: mostly round
lots, many odd lots, now and then a block.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable

from tickwire.ingestor.streams.base import Trade
from tickwire.ingestor.streams.connection import StreamSink

STEP_SECONDS = 0.02


def trade_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.35:
        return rng.randint(1, 99)                      # odd lot
    if roll < 0.95:
        return 100 * rng.choice((1, 1, 1, 2, 2, 3, 5))  # round lots
    return 100 * int(rng.lognormvariate(math.log(20), 1.0)) + 100  # block


class SimulatedStream:
    name = "simulated"
    always_live = True

    def __init__(self, sink: StreamSink, price_of: Callable[[str], float | None], cap: int,
                 trades_per_second: float, seed: int = 0, volatility: float = 0.0002):
        self.cap = cap
        self.source = "simulated-stream"
        self._sink = sink
        self._price_of = price_of
        self._rate = trades_per_second
        self._rng = random.Random(seed)
        self._volatility = volatility
        self._prices: dict[str, float] = {}
        self.held: set[str] = set()
        self.state = "idle"
        self.reconnects = 0
        self.last_message_at: float | None = None

    def room(self) -> int:
        return self.cap

    def want(self, symbols: set[str], interested: bool) -> None:
        for symbol in self.held - symbols:
            self._prices.pop(symbol, None)
        self.held = set(symbols)
        self.state = "connected" if self.held else "idle"

    def describe(self) -> dict:
        age = None if self.last_message_at is None else round(
            time.monotonic() - self.last_message_at, 3)
        return {"name": self.name, "state": self.state, "symbols": sorted(self.held),
                "held": len(self.held), "cap": self.cap, "reconnects": 0, "errors": 0,
                "junk": 0, "lastMessageAgeSeconds": age}

    async def run(self) -> None:
        mean = self._rate * STEP_SECONDS
        while True:
            await asyncio.sleep(STEP_SECONDS)
            now = time.time()
            for symbol in list(self.held):
                for _ in range(self._arrivals(mean)):
                    self._trade(symbol, now)

    def _arrivals(self, mean: float) -> int:
        # Knuth's Poisson sampler: the mean per step is small.
        limit, count, product = math.exp(-mean), 0, self._rng.random()
        while product > limit:
            count += 1
            product *= self._rng.random()
        return count

    def _trade(self, symbol: str, now: float) -> None:
        price = self._prices.get(symbol) or self._price_of(symbol)
        if price is None:
            return
        price = max(0.01, round(price * math.exp(self._rng.gauss(0, self._volatility)), 2))
        self._prices[symbol] = price
        self.last_message_at = time.monotonic()
        self._sink.on_trades(self.name, [Trade(symbol, price, trade_size(self._rng), now)])
