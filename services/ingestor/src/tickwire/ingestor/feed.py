"""Per-symbol feed state shared in Redis, and the DATA_STALE / recovered notices.

`market-data:feed:{SYMBOL}` holds `fetchedAt` (Unix ms of the newest provider answer, from
any replica) and `stale` ("1" while flagged). Flag changes are test-and-set scripts, so a
notice goes out once per change even when the symbol moves between replicas: whichever
replica flips the flag publishes it on `market-data:status`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tickwire.core import names
from tickwire.core.codecs import DecodeError, decode_tick, encode_msgpack
from tickwire.core.models import FeedState, FeedStatus, Tick
from tickwire.core.redisconn import RedisClient, run_scripts

# Record a provider answer; returns 1 if that ended a stale spell.
_FETCHED = """
redis.call('HSET', KEYS[1], 'fetchedAt', ARGV[1])
if redis.call('HGET', KEYS[1], 'stale') == '1' then
  redis.call('HDEL', KEYS[1], 'stale')
  return 1
end
return 0
"""

# Flag stale; returns 1 if it was not flagged already.
_STALE = """
if redis.call('HGET', KEYS[1], 'stale') == '1' then
  return 0
end
redis.call('HSET', KEYS[1], 'stale', '1')
return 1
"""


@dataclass(frozen=True, slots=True)
class SharedState:
    fetched_at: float | None  # Unix seconds
    stale: bool
    cached: Tick | None


class FeedStore:
    def __init__(self, redis: RedisClient):
        self._redis = redis
        self._fetched = redis.register_script(_FETCHED)
        self._stale = redis.register_script(_STALE)

    async def ping(self) -> None:
        """Raises RedisError/OSError unless Redis answers."""
        await self._redis.ping()

    async def load(self, symbols: list[str]) -> dict[str, SharedState]:
        """Feed state and cached tick of each symbol. Without a recorded fetch, the cached
        tick's publish time stands in for it."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for symbol in symbols:
                pipe.hmget(names.feed_key(symbol), "fetchedAt", "stale")
                pipe.get(names.quote_key(symbol))
            replies = await pipe.execute()
        states = {}
        for index, symbol in enumerate(symbols):
            (fetched_ms, stale), payload = replies[2 * index], replies[2 * index + 1]
            cached = None
            if payload:
                try:
                    cached = decode_tick(payload)
                except DecodeError:
                    cached = None
            fetched_at = int(fetched_ms) / 1000 if fetched_ms else (
                cached.published_at / 1e9 if cached else None)
            states[symbol] = SharedState(fetched_at, stale == b"1", cached)
        return states

    async def mark_fetched(self, symbols: list[str], now: float) -> list[str]:
        """Record that quotes arrived; returns the symbols whose stale spell this ended."""
        replies = await run_scripts(self._redis, self._fetched,
                                    [([names.feed_key(s)], [int(now * 1000)]) for s in symbols])
        return [s for s, changed in zip(symbols, _raise_first(replies)) if changed]

    async def mark_stale(self, symbols: list[str]) -> list[str]:
        """Flag symbols stale; returns those that were not flagged already."""
        replies = await run_scripts(self._redis, self._stale,
                                    [([names.feed_key(s)], []) for s in symbols])
        return [s for s, changed in zip(symbols, _raise_first(replies)) if changed]

    async def announce(self, state: FeedState, symbols: list[str], reason: str) -> None:
        status = FeedStatus(state, tuple(sorted(symbols)), reason, int(time.time() * 1000))
        await self._redis.publish(names.STATUS_CHANNEL, encode_msgpack(status.to_wire()))


def _raise_first(replies: list) -> list:
    """The replies, unless one call failed: then its error (the caller retries the round)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
