"""An offline provider: a seeded random walk per symbol with plausible daily figures."""

from __future__ import annotations

import math
import random
import time
import zlib
from dataclasses import dataclass

from tickwire.core.models import StockQuote, iso_from_unix
from tickwire.ingestor.providers.base import FetchResult

# Rough price levels so well-known names look familiar; others get a level from their hash.
KNOWN_LEVELS = {
    "AAPL": 190.0, "MSFT": 410.0, "GOOGL": 165.0, "AMZN": 180.0, "NVDA": 120.0,
    "META": 500.0, "TSLA": 240.0, "RELIANCE": 2450.0, "TCS": 3900.0, "INFY": 1600.0,
}


@dataclass
class _Walk:
    previous_close: float
    open: float
    price: float
    high: float
    low: float
    volume: int
    rng: random.Random


class SimulatedProvider:
    """Always answers; each fetch moves every requested symbol one random step."""

    name = "simulated"
    max_batch = 1000

    def __init__(self, seed: int = 0, volatility: float = 0.0015):
        self._seed = seed
        self._volatility = volatility
        self._walks: dict[str, _Walk] = {}

    def _walk(self, symbol: str) -> _Walk:
        walk = self._walks.get(symbol)
        if walk is None:
            rng = random.Random(zlib.crc32(symbol.encode()) ^ self._seed)
            level = KNOWN_LEVELS.get(symbol) or math.exp(rng.uniform(math.log(5), math.log(1500)))
            previous_close = round(level, 2)
            opening = round(previous_close * (1 + rng.gauss(0, 0.006)), 2)
            walk = _Walk(previous_close, opening, opening, opening, opening,
                         rng.randint(50_000, 5_000_000), rng)
            self._walks[symbol] = walk
        return walk

    async def fetch(self, symbols: list[str]) -> FetchResult:
        now = iso_from_unix(time.time())
        quotes = {}
        for symbol in symbols:
            walk = self._walk(symbol)
            step = math.exp(walk.rng.gauss(0, self._volatility))
            walk.price = max(0.01, round(walk.price * step, 2))
            walk.high = max(walk.high, walk.price)
            walk.low = min(walk.low, walk.price)
            walk.volume += walk.rng.randint(100, 20_000)
            change = round(walk.price - walk.previous_close, 2)
            quotes[symbol] = StockQuote(
                symbol=symbol, price=walk.price, change=change,
                change_percent=round(change / walk.previous_close * 100, 4),
                volume=walk.volume, high=walk.high, low=walk.low, open=walk.open,
                previous_close=walk.previous_close, timestamp=now, source=self.name,
            )
        return FetchResult(quotes=quotes)

    async def close(self) -> None:
        return None
