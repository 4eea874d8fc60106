"""Local fan-out: which sessions watch which symbol, and the upstream interest behind it.

The first local subscriber of a symbol subscribes its Redis channel and announces the
edge's interest to the registry; the last one to leave undoes both. If the Redis
subscribe fails, nothing changes and the caller reports SUBSCRIPTION_FAILED.
Changes of upstream interest are serialised by one lock, so a symbol's subscribe and
unsubscribe can never overtake each other.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.codecs import DecodeError, decode_tick
from tickwire.core.tickbus import RedisTickBus
from tickwire.edge.announcements import Announcements
from tickwire.edge.frames import TickFrames
from tickwire.edge.session import Session

log = logging.getLogger(__name__)

TICKS_RECEIVED = Counter("tickwire_edge_ticks_received_total", "Ticks received from Redis")
SYMBOLS = Gauge("tickwire_edge_symbols", "Symbols with at least one local subscriber")


class Hub:
    def __init__(self, bus: RedisTickBus, announcements: Announcements):
        self._bus = bus
        self._announcements = announcements
        self._subscribers: dict[str, set[Session]] = {}
        self._lock = asyncio.Lock()

    def symbols(self) -> list[str]:
        return list(self._subscribers)

    async def subscribe(self, session: Session, symbols: list[str]) -> list[str]:
        """Add `session` to `symbols`; returns the symbols that failed upstream."""
        async with self._lock:
            new = [s for s in symbols if s not in self._subscribers]
            failed: list[str] = []
            if new:
                try:
                    await self._bus.subscribe([names.tick_channel(s) for s in new])
                except (RedisError, OSError) as exc:
                    log.warning("redis subscribe failed", extra={"symbols": new[:10],
                                                                 "error": repr(exc)})
                    failed = new
                else:
                    for symbol in new:
                        self._subscribers[symbol] = set()
                    await self._announcements.subscribed(new)
            for symbol in symbols:
                if symbol in self._subscribers:
                    self._subscribers[symbol].add(session)
                    session.symbols.add(symbol)
            SYMBOLS.set(len(self._subscribers))
            return failed

    async def unsubscribe(self, session: Session, symbols: list[str]) -> None:
        async with self._lock:
            emptied = []
            for symbol in symbols:
                session.symbols.discard(symbol)
                session.forget(symbol)
                watchers = self._subscribers.get(symbol)
                if watchers is None:
                    continue
                watchers.discard(session)
                if not watchers:
                    del self._subscribers[symbol]
                    emptied.append(symbol)
            if emptied:
                await self._bus.unsubscribe([names.tick_channel(s) for s in emptied])
                await self._announcements.unsubscribed(emptied)
            SYMBOLS.set(len(self._subscribers))

    def dispatch(self, channel: str, payload: bytes) -> None:
        """Called by the bus listener for every message: decode once, offer to each watcher."""
        if channel == names.CONTROL_CHANNEL:
            return
        watchers = self._subscribers.get(names.symbol_from_channel(channel))
        if not watchers:
            return
        try:
            tick = decode_tick(payload)
        except DecodeError as exc:
            log.warning("undecodable tick", extra={"channel": channel, "error": str(exc)})
            return
        TICKS_RECEIVED.inc()
        frames = TickFrames(tick)
        for session in watchers:
            session.offer(tick, frames)
