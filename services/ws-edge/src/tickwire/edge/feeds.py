"""Which symbols' feeds are down, as the ingestor announces them, and the DATA_STALE
warnings that follow.

Guarantees: a `stale` notice reaches each client watching any of its symbols once, as
one DATA_STALE error naming its symbols; a client subscribing a stale symbol later gets
the same error; `recovered` needs no message (the prices do). Junk is logged and ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aioredis
from prometheus_client import Counter

from tickwire.core import names
from tickwire.core.codecs import DecodeError, decode_msgpack
from tickwire.core.models import ErrorCode, FeedState, FeedStatus, error_message
from tickwire.edge.hub import Hub
from tickwire.edge.session import Session

log = logging.getLogger(__name__)

STALE_WARNINGS = Counter("tickwire_edge_data_stale_warnings_total",
                         "DATA_STALE errors sent to clients")


class Feeds:
    def __init__(self, hub: Hub):
        self._hub = hub
        self._stale: set[str] = set()  # the feed is down; the cache is served

    def stale_among(self, symbols: Iterable[str]) -> list[str]:
        return [s for s in symbols if s in self._stale]

    def on_message(self, _channel: str, payload: bytes) -> None:
        """A message on the status channel."""
        try:
            status = FeedStatus.from_wire(decode_msgpack(payload))
        except (DecodeError, ValueError) as exc:
            log.warning("invalid feed status", extra={"error": str(exc)})
            return
        if status.state == FeedState.RECOVERED:
            self._stale.difference_update(status.symbols)
            return
        self._stale.update(status.symbols)
        affected: dict[Session, list[str]] = {}
        for symbol in status.symbols:
            for session in self._hub.watchers(symbol):
                affected.setdefault(session, []).append(symbol)
        self.warn(affected)

    def warn(self, affected: dict[Session, list[str]]) -> None:
        for session, symbols in affected.items():
            STALE_WARNINGS.inc()
            session.send(error_message(ErrorCode.DATA_STALE,
                                       "providers are failing; serving cached data", symbols))

    async def load(self, redis: aioredis.Redis) -> None:
        """At start: the symbols the ingestor flagged stale before this edge listened."""
        async for key in redis.scan_iter(match=f"{names.FEED_KEY_PREFIX}*", count=1000):
            if await redis.hget(key, "stale") == b"1":
                self._stale.add(key.decode()[len(names.FEED_KEY_PREFIX):])
