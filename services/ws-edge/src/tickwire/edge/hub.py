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
import time

from prometheus_client import Gauge
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.codecs import DecodeError, decode_tick
from tickwire.core.models import Tick
from tickwire.core.tickbus import RedisTickBus
from tickwire.edge.announcements import Announcements
from tickwire.edge.frames import TickFrames
from tickwire.edge.observability import HOT, fan_out_span, upstream_span
from tickwire.edge.session import Session

log = logging.getLogger(__name__)

SYMBOLS = Gauge("tickwire_edge_symbols", "Symbols with at least one local subscriber")


class Hub:
    def __init__(self, bus: RedisTickBus, announcements: Announcements):
        self._bus = bus
        self._announcements = announcements
        self._subscribers: dict[str, set[Session]] = {}
        self._lock = asyncio.Lock()
        self._held: dict[str, tuple[Tick, TickFrames]] | None = None  # while paused

    def symbols(self) -> list[str]:
        return list(self._subscribers)

    async def subscribe(self, session: Session, symbols: list[str]) -> list[str]:
        """Add `session` to `symbols`; returns the symbols that failed upstream."""
        async with self._lock:
            new = [s for s in symbols if s not in self._subscribers]
            failed: list[str] = []
            if new:
                with upstream_span("subscribe", new) as span:
                    try:
                        await self._bus.subscribe([names.tick_channel(s) for s in new])
                    except (RedisError, OSError) as exc:
                        log.warning("redis subscribe failed", extra={"symbols": new[:10],
                                                                     "error": repr(exc)})
                        span.record_exception(exc)
                        failed = new
                    else:
                        for symbol in new:
                            self._subscribers[symbol] = set()
                        self._announcements.subscribed(new)
                        log.info("symbols subscribed upstream",
                                 extra={"symbols": new[:20], "count": len(new)})
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
                with upstream_span("unsubscribe", emptied):
                    await self._bus.unsubscribe([names.tick_channel(s) for s in emptied])
                    self._announcements.unsubscribed(emptied)
                    log.info("symbols unsubscribed upstream",
                             extra={"symbols": emptied[:20], "count": len(emptied)})
            SYMBOLS.set(len(self._subscribers))

    def watchers(self, symbol: str) -> set[Session]:
        return self._subscribers.get(symbol, set())

    def subscriber_counts(self) -> dict[str, int]:
        """symbol → local subscribers (a REST poll holder counts as one)."""
        return {symbol: len(watchers) for symbol, watchers in self._subscribers.items()}

    def dispatch_tick(self, channel: str, payload: bytes) -> None:
        """Called by the bus listener for every tick: decode once, offer to each watcher."""
        symbol = names.symbol_from_channel(channel)
        watchers = self._subscribers.get(symbol)
        if not watchers:
            return
        try:
            tick = decode_tick(payload)
        except DecodeError as exc:
            log.warning("undecodable tick", extra={"channel": channel, "error": str(exc)})
            return
        HOT.ticks_received += 1
        frames = TickFrames(tick)
        if self._held is not None:
            self._held[symbol] = (tick, frames)
            return
        if tick.traceparent:  # sampled upstream: this edge's part of the tick's trace
            with fan_out_span(tick, channel) as span:
                span.set_attribute("tickwire.recipients",
                                   sum(1 for session in watchers if session.offer(tick, frames)))
            return
        for session in watchers:
            session.offer(tick, frames)

    # -- control: pause holds the newest tick per symbol, resume delivers it ----------

    @property
    def paused(self) -> bool:
        return self._held is not None

    def pause(self) -> None:
        if self._held is None:
            self._held = {}

    def resume(self) -> None:
        held, self._held = self._held, None
        for symbol, (tick, frames) in (held or {}).items():
            for session in self._subscribers.get(symbol, ()):
                session.offer(tick, frames)


class PollInterest:
    """REST reads count as interest: a polled symbol stays subscribed upstream (so the
    ingestor keeps fetching it) for `ttl` seconds after the last read."""

    def __init__(self, hub: Hub, ttl: float, max_symbols: int = 5000):
        self._hub = hub
        self._ttl = ttl
        self._max = max_symbols
        self._expiry: dict[str, float] = {}
        self._holder = _InterestHolder()

    async def touch(self, symbols: list[str]) -> None:
        if self._ttl <= 0:
            return
        until = time.monotonic() + self._ttl
        new = [s for s in symbols if s not in self._expiry][: max(0, self._max - len(self._expiry))]
        for symbol in symbols:
            if symbol in self._expiry or symbol in new:
                self._expiry[symbol] = until
        if new:
            failed = await self._hub.subscribe(self._holder, new)
            for symbol in failed:
                self._expiry.pop(symbol, None)

    async def expire(self) -> None:
        now = time.monotonic()
        expired = [s for s, until in self._expiry.items() if until <= now]
        for symbol in expired:
            del self._expiry[symbol]
        if expired:
            await self._hub.unsubscribe(self._holder, expired)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, min(5.0, self._ttl / 3)))
            await self.expire()


class _InterestHolder:
    """Stands in the hub for "someone polls this symbol": it holds interest, receives nothing."""

    def __init__(self) -> None:
        self.symbols: set[str] = set()

    def offer(self, *_args, **_kwargs) -> bool:
        return False

    def forget(self, _symbol: str) -> None:
        return None
