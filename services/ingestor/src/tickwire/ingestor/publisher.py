"""Turns quotes into ticks: numbered, cached and published by one Redis script per quote.

`seq` is a counter in Redis (HINCRBY), so it continues when another replica takes a
symbol over. When the counter is missing (a fresh symbol, or Redis lost its data) a new
`epoch` is minted in the same script, telling clients to restart counting.

Guarantees, per symbol, whichever replicas publish it:
- numbering, caching and publishing are one atomic step, so the cache holds the tick
  with the highest `seq` and Pub/Sub carries ticks in `seq` order;
- the cache never moves backwards: a quote observed (asked for, received) before the
  newest one published is refused (not numbered, cached or published), as happens when
  two replicas overlap during a rebalance and the one holding an older quote is late.
A batch of quotes is one write of its scripts and one round trip per Redis node (on a
standalone Redis over a connection of the publisher's own: `scripts`).
"""

from __future__ import annotations

import time
import uuid

import ormsgpack
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tickwire.core import names
from tickwire.core.models import StockQuote, Tick
from tickwire.core.redisconn import RedisClient, script_batches, tick_publish_command
from tickwire.core.telemetry import FLOW, TICK, traceparent

TRACER = trace.get_tracer("tickwire.ingestor")

# KEYS: seq hash, quote key, tick channel (all in the symbol's slot).
# ARGV: epoch to mint, PUBLISH | SPUBLISH, when the quote was observed (Unix ms), and the
# tick as a msgpack map missing its last two entries, seq and epoch, which only this script
# knows. Returns {seq, epoch}, or {0, ''} when the quote was observed before the newest
# published one.
_PUBLISH = """
local newest = tonumber(redis.call('HGET', KEYS[1], 'ts') or '-1')
local ts = tonumber(ARGV[3])
if ts < newest then return {0, ''} end
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
redis.call('HSET', KEYS[1], 'ts', ARGV[3])
local payload = ARGV[4] .. cmsgpack.pack('seq') .. cmsgpack.pack(seq)
  .. cmsgpack.pack('epoch') .. cmsgpack.pack(epoch)
redis.call('SET', KEYS[2], payload, 'KEEPTTL')  -- an inactive symbol's TTL stays (lifetimes)
redis.call(ARGV[2], KEYS[3], payload)
return {seq, epoch}
"""


class TickPublisher:
    """Publishes a quote only when it differs from the last one published for its symbol.

    The comparison is against the cached tick too: a replica that takes a symbol over
    `adopt`s the cache first, so an unchanged quote is not published again after a
    takeover or restart.
    """

    def __init__(self, redis: RedisClient):
        self._scripts = script_batches(redis, _PUBLISH)
        self._command = tick_publish_command(redis)
        self._last: dict[str, StockQuote] = {}

    async def publish(self, quote: StockQuote, observed_at: float | None = None) -> Tick | None:
        """The tick published, or None when the quote was unchanged or observed before the
        newest published. Raises RedisError/OSError when Redis did not take it."""
        outcome = (await self.publish_batch([quote], observed_at))[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def publish_batch(self, quotes: list[StockQuote], observed_at: float | None = None
                            ) -> list[Tick | None | Exception]:
        """Publish quotes in one batch; per quote in order: its tick, None (unchanged
        or stale) or the exception that kept it from Redis (its symbol may be retried).

        `observed_at` (Unix seconds, default now) is when this replica learned the quotes:
        for a poll, when its round began. Ordering by it, not by the quote's own timestamp,
        is what keeps the cache from going backwards when two replicas overlap in a
        rebalance: providers stamp quotes differently (fetch time, last trade, the day's
        close), so a fallback provider's quote may carry an older stamp and still be news."""
        observed_ms = int((time.time() if observed_at is None else observed_at) * 1000)
        outcomes: list[Tick | None | Exception] = [None] * len(quotes)
        changed = [i for i, q in enumerate(quotes) if not q.same_market_state(self._last.get(q.symbol))]
        if not changed:
            return outcomes
        # A PRODUCER span whose context rides inside the ticks (only when sampled), so each
        # edge's fan-out joins the trace.
        with TRACER.start_as_current_span("tick publish", kind=SpanKind.PRODUCER, attributes={
                FLOW: TICK, "messaging.system": "redis",
                "messaging.batch.message_count": len(changed),
                "tickwire.symbols": [quotes[i].symbol for i in changed]}) as span:
            parent = traceparent()
            drafts = [_draft(quotes[i], parent) for i in changed]
            # The epoch a symbol's sequence starts with, where it starts now: fresh for
            # every batch, so a restarted sequence never reuses its old epoch; symbols of
            # one batch may share it (an epoch only tells one symbol's sequences apart).
            epoch = uuid.uuid4().hex[:8]
            replies = await self._scripts.run([
                ([names.seq_key(d.symbol), names.quote_key(d.symbol), names.tick_channel(d.symbol)],
                 [epoch, self._command, observed_ms, _head(d)])
                for i, d in zip(changed, drafts)])
            for index, draft, reply in zip(changed, drafts, replies):
                if isinstance(reply, Exception):
                    outcomes[index] = reply
                    continue
                seq, epoch = int(reply[0]), reply[1]
                if seq == 0:
                    span.add_event("stale quote refused", {"tickwire.symbol": draft.symbol})
                    continue
                draft.seq = seq
                draft.epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)
                self._last[draft.symbol] = quotes[index]
                outcomes[index] = draft
        return outcomes

    def adopt(self, tick: Tick) -> None:
        """Take the cached tick as the last one published (it is, by some replica)."""
        try:
            self._last[tick.symbol] = StockQuote.from_wire(tick.data)
        except (KeyError, TypeError, ValueError):
            self._last.pop(tick.symbol, None)

    def forget(self, symbol: str) -> None:
        self._last.pop(symbol, None)

    async def aclose(self) -> None:
        """Close the publisher's own Redis connection (the client's pool is the caller's)."""
        await self._scripts.aclose()


def _draft(quote: StockQuote, parent: str | None) -> Tick:
    """The tick before Redis numbers it (seq 0, no epoch yet)."""
    return Tick(symbol=quote.symbol, data=quote.to_wire(), seq=0, epoch="",
                published_at=time.time_ns(), traceparent=parent)


# A fixmap header (0x80 | entries) → the header of the same map with two entries more.
_TWO_MORE = {0x80 | n: bytes([0x80 | (n + 2)]) for n in range(14)}


def _head(draft: Tick) -> bytes:
    """The tick's msgpack map with every entry but seq and epoch (its header counts them):
    the map packed in one call (ormsgpack: the same bytes as msgpack's, in half the time),
    its header then told of the two entries the script adds."""
    wire = draft.to_wire()
    del wire["seq"], wire["epoch"]
    packed = ormsgpack.packb(wire)
    return _TWO_MORE[packed[0]] + packed[1:]
