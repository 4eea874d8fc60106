"""How long a symbol's Redis keys live once nobody watches it.

Guarantees:
- When a symbol goes inactive, every per-symbol key the ingestor and its streams keep
  (`symbol_keys`: quote cache, `seq`, feed state, session aggregate) gets a TTL: the cache
  outlives a short gap (a page reload, so REST and snapshots still answer), then goes,
  and Redis holds nothing for symbols watched once long ago.
- A symbol that becomes active again loses the TTL (PERSIST). A publish keeps whatever
  TTL the quote has (SET ... KEEPTTL), so a poll answer landing just after the symbol
  went inactive does not make its cache permanent.
- Changes that could not be written (Redis down) are kept and written on the next try.
- Writes are serialised with other writers of these keys that hold `writing` (the
  session saves): a save that creates a key cannot land after the expiry meant for it.
"""

from __future__ import annotations

import asyncio

from tickwire.core import names
from tickwire.core.redisconn import RedisClient


def symbol_keys(symbol: str) -> list[str]:
    return [names.quote_key(symbol), names.seq_key(symbol), names.feed_key(symbol),
            names.session_key(symbol)]


class KeyLifetimes:
    def __init__(self, redis: RedisClient, ttl_seconds: int):
        self._redis = redis
        self.ttl = ttl_seconds
        self.writing = asyncio.Lock()
        self._due: dict[str, bool] = {}  # symbol → active, newest change only

    def changed(self, symbol: str, active: bool) -> None:
        self._due[symbol] = active

    async def write(self) -> int:
        """Write the changes seen so far (one pipeline); returns how many symbols.
        Raises RedisError/OSError, keeping what was not written for the next call."""
        if not self._due:
            return 0
        async with self.writing:
            return await self._write()

    async def _write(self) -> int:
        due, self._due = self._due, {}
        if not due:
            return 0
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for symbol, active in due.items():
                    for key in symbol_keys(symbol):
                        if active:
                            pipe.persist(key)
                        else:
                            pipe.expire(key, self.ttl)
                await pipe.execute()
        except BaseException:
            for symbol, active in due.items():
                self._due.setdefault(symbol, active)  # a newer change wins
            raise
        return len(due)
