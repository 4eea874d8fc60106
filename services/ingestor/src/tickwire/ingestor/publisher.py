"""Turns quotes into ticks: numbered in Redis, cached, published.

`seq` is a counter in Redis (HINCRBY), so it continues when another replica takes a
symbol over. When the counter is missing (a fresh symbol, or Redis lost its data) a new
`epoch` is minted in the same script, telling clients to restart counting.
"""

from __future__ import annotations

import time
import uuid

import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tickwire.core import names
from tickwire.core.codecs import encode_tick
from tickwire.core.models import StockQuote, Tick
from tickwire.core.telemetry import FLOW, TICK, traceparent
from tickwire.core.tickbus import RedisTickBus

TRACER = trace.get_tracer("tickwire.ingestor")

_NEXT_SEQ = """
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
return {seq, redis.call('HGET', KEYS[1], 'epoch')}
"""


class TickPublisher:
    """Publishes a quote only when it differs from the last one published for its symbol.

    The comparison is against the cached tick too: a replica that takes a symbol over
    `adopt`s the cache first, so an unchanged quote is not published again after a
    takeover or restart.
    """

    def __init__(self, redis: aioredis.Redis, bus: RedisTickBus):
        self._bus = bus
        self._redis = redis
        self._next_seq = redis.register_script(_NEXT_SEQ)
        self._last: dict[str, StockQuote] = {}

    async def publish(self, quote: StockQuote) -> Tick | None:
        if quote.same_market_state(self._last.get(quote.symbol)):
            return None
        channel = names.tick_channel(quote.symbol)
        # A PRODUCER span whose context rides inside the tick (only when sampled), so each
        # edge's fan-out joins the trace.
        with TRACER.start_as_current_span("tick publish", kind=SpanKind.PRODUCER, attributes={
                FLOW: TICK, "messaging.system": "redis", "messaging.destination.name": channel,
                "tickwire.symbol": quote.symbol, "tickwire.source": quote.source}) as span:
            seq, epoch = await self._next_seq(keys=[names.seq_key(quote.symbol)],
                                              args=[uuid.uuid4().hex[:8]])
            tick = Tick(symbol=quote.symbol, data=quote.to_wire(), seq=int(seq),
                        epoch=epoch.decode() if isinstance(epoch, bytes) else str(epoch),
                        published_at=time.time_ns(), traceparent=traceparent())
            span.set_attribute("tickwire.seq", tick.seq)
            await self._bus.publish(tick)
        self._last[quote.symbol] = quote
        return tick

    async def publish_many(self, quotes: list[StockQuote]) -> list[Tick]:
        """`publish` for quotes of distinct symbols in two round trips, whatever their
        number: one pipeline numbers them, one MULTI/EXEC caches and publishes them all.
        Returns the ticks published (unchanged quotes are skipped, as by `publish`)."""
        fresh = [q for q in quotes if not q.same_market_state(self._last.get(q.symbol))]
        if not fresh:
            return []
        with TRACER.start_as_current_span("tick publish", kind=SpanKind.PRODUCER, attributes={
                FLOW: TICK, "messaging.system": "redis", "messaging.batch.message_count":
                len(fresh), "tickwire.symbols": [q.symbol for q in fresh[:20]]}):
            epoch = uuid.uuid4().hex[:8]
            async with self._redis.pipeline(transaction=False) as pipe:
                for quote in fresh:
                    await self._next_seq(keys=[names.seq_key(quote.symbol)], args=[epoch],
                                         client=pipe)
                numbered = await pipe.execute()
            now, parent = time.time_ns(), traceparent()
            ticks = [Tick(symbol=q.symbol, data=q.to_wire(), seq=int(seq),
                          epoch=e.decode() if isinstance(e, bytes) else str(e),
                          published_at=now, traceparent=parent)
                     for q, (seq, e) in zip(fresh, numbered)]
            async with self._redis.pipeline(transaction=True) as pipe:
                for tick in ticks:
                    payload = encode_tick(tick)
                    pipe.set(names.quote_key(tick.symbol), payload)
                    pipe.publish(names.tick_channel(tick.symbol), payload)
                await pipe.execute()
        for quote in fresh:
            self._last[quote.symbol] = quote
        return ticks

    def adopt(self, tick: Tick) -> None:
        """Take the cached tick as the last one published (it is, by some replica)."""
        try:
            self._last[tick.symbol] = StockQuote.from_wire(tick.data)
        except (KeyError, TypeError, ValueError):
            self._last.pop(tick.symbol, None)

    def forget(self, symbol: str) -> None:
        self._last.pop(symbol, None)
