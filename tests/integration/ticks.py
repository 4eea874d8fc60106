"""Publishes ticks straight into Redis, as the ingestor would (cache + channel)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from tickwire.core import names
from tickwire.core.models import StockQuote, Tick, iso_now
from tickwire.core.tickbus import RedisTickBus


def make_tick(symbol: str, seq: int, epoch: str = "e1", price: float | None = None,
              source: str = "test") -> Tick:
    price = price if price is not None else round(100 + seq * 0.01, 2)
    quote = StockQuote(symbol=symbol, price=price, change=0.5, change_percent=0.5,
                       volume=1000 + seq, high=price + 1, low=price - 1, open=100.0,
                       previous_close=99.5, timestamp=iso_now(), source=source)
    return Tick(symbol=symbol, data=quote.to_wire(), seq=seq, epoch=epoch,
                published_at=time.time_ns())


class Injector:
    def __init__(self, redis_url: str):
        self.redis = aioredis.Redis.from_url(redis_url)
        self.bus = RedisTickBus(self.redis)

    async def publish(self, symbol: str, seq: int, epoch: str = "e1", **kw) -> Tick:
        tick = make_tick(symbol, seq, epoch, **kw)
        await self.bus.publish(tick)
        return tick

    async def subscribers(self, symbol: str) -> int:
        counts = await self.redis.pubsub_numsub(names.tick_channel(symbol))
        return counts[0][1]

    async def close(self) -> None:
        await self.redis.aclose()
