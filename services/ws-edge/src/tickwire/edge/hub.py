"""Local fan-out: which sessions watch which symbol, and the upstream interest behind it.

Guarantees:
- Membership: a session is in a symbol's watchers only once the symbol's Redis channel
  is confirmed subscribed, so a tick published after `subscribe` returns reaches it.
- Upstream interest per symbol, not behind one lock: a symbol's first local interest
  (a session, or a REST poll through `hold`) subscribes its channel and announces it to
  the registry; subscribes that meet a symbol already on its way wait for that one
  round trip. Everything asked for while a SUBSCRIBE is in flight goes out together in
  the next one.
- At most `max_symbols` distinct symbols are held (`beyond_cap` names the rest), so the
  registry, Redis and the ingestor never carry more for one edge.
- If the Redis subscribe fails, nothing changes: the symbols are not held, nothing is
  announced, and the caller reports SUBSCRIPTION_FAILED.
- The last interest leaving does not unsubscribe at once: the channel and the registry
  keep the symbol for `release_delay` seconds, and interest that comes back meanwhile
  cancels the release. A page reload, or subscribe/unsubscribe churn, reaches Redis and
  Kafka only as its net transition per symbol.
- `latest` answers a held symbol's snapshot from the ticks this edge received
  (`snapshots.LatestTicks`), reading Redis once per symbol and hold, not per subscribe.
- A cold read waiting for a symbol's first quote (`ColdReads`) gets its first tick as it
  is dispatched, whether or not a session watches the symbol too.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Gauge
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.codecs import DecodeError, decode_tick
from tickwire.core.models import Tick
from tickwire.core.tickbus import TickBus
from tickwire.edge.announcements import Announcements
from tickwire.edge.coldread import ColdReads
from tickwire.edge.frames import TickFrames
from tickwire.edge.observability import HOT, fan_out_span, upstream_span
from tickwire.edge.session import Session
from tickwire.edge.snapshots import LatestTicks

log = logging.getLogger(__name__)

MAX_SYMBOLS = 5000  # distinct symbols one edge holds upstream, as REST polling is capped

SYMBOLS = Gauge("tickwire_edge_symbols", "Symbols with at least one local subscriber")


class Hub:
    def __init__(self, bus: TickBus, announcements: Announcements, release_delay: float = 1.0,
                 cold_reads: ColdReads | None = None, max_symbols: int = MAX_SYMBOLS):
        self.max_symbols = max_symbols
        self._bus = bus
        self._cold_reads = cold_reads
        self._awaited = cold_reads.awaited if cold_reads is not None else {}
        self._announcements = announcements
        self._release_delay = release_delay
        # symbol → its sessions, for every symbol subscribed upstream (a symbol waiting
        # to be released has none)
        self._watchers: dict[str, set[Session]] = {}
        self._polled: set[str] = set()  # held upstream for REST readers
        self._subscribing: dict[str, asyncio.Future[bool]] = {}  # asked of Redis, unconfirmed
        self._queued: list[str] = []  # for the next SUBSCRIBE
        self._released: list[str] = []  # for the next UNSUBSCRIBE
        self._upstream: asyncio.Task | None = None
        self._releases: dict[str, asyncio.TimerHandle] = {}
        self._held: dict[str, tuple[Tick, TickFrames]] | None = None  # while paused
        self._latest = LatestTicks(bus)

    def symbols(self) -> list[str]:
        """The symbols this edge holds upstream (what its heartbeat announces)."""
        return list(self._watchers)

    def watchers(self, symbol: str) -> set[Session]:
        return self._watchers.get(symbol, set())

    async def latest(self, symbols: list[str]) -> list[Tick | None]:
        """The newest tick of each of `symbols` (None: none cached); held symbols are
        answered locally where this edge has seen them. Raises RedisError/OSError when a
        read was needed and failed."""
        held = [s for s in symbols if s in self._watchers]
        if len(held) == len(symbols):
            return await self._latest.latest(symbols)
        others = [s for s in symbols if s not in self._watchers]
        ticks = dict(zip(held, await self._latest.latest(held)))
        ticks.update(zip(others, await self._latest.read(others)))  # REST past the cap
        return [ticks[s] for s in symbols]

    def subscriber_counts(self) -> dict[str, int]:
        """symbol → local subscribers (REST polling counts as one)."""
        return {symbol: len(watchers) + (symbol in self._polled)
                for symbol, watchers in self._watchers.items()}

    # -- interest ---------------------------------------------------------------------

    def beyond_cap(self, symbols: list[str]) -> list[str]:
        """Those of `symbols` that would take the edge past `max_symbols` distinct symbols
        (held, on their way upstream, or waiting to be released): the caller refuses them."""
        # The two are disjoint: a symbol moves from one to the other in one step.
        watchers, subscribing = self._watchers, self._subscribing
        room = self.max_symbols - len(watchers) - len(subscribing)
        if len(symbols) <= room:
            return []
        new = [s for s in dict.fromkeys(symbols) if s not in watchers and s not in subscribing]
        return new[max(0, room):]

    async def subscribe(self, session: Session, symbols: list[str]) -> list[str]:
        """Add `session` to `symbols`; returns the symbols that failed upstream."""
        waiting = self._want(symbols)
        for symbol in symbols:
            if symbol not in waiting:
                self._join(session, symbol)
        failed: list[str] = []
        for symbol, confirmed in waiting.items():
            if not await confirmed or symbol not in self._watchers:
                failed.append(symbol)
            elif not session.closed:
                self._join(session, symbol)
        return failed

    def unsubscribe(self, session: Session, symbols: list[str]) -> None:
        for symbol in symbols:
            session.unwatch(symbol)
            watchers = self._watchers.get(symbol)
            if watchers is not None:
                watchers.discard(session)
                if not watchers:
                    self._release_later(symbol)

    def leave(self, session: Session) -> None:
        """A finished session: everything it watched."""
        self.unsubscribe(session, list(session.symbols))

    async def hold(self, symbols: list[str]) -> list[str]:
        """Hold `symbols` upstream with no session (REST polling); returns those that failed."""
        waiting = self._want(symbols)
        failed = []
        for symbol in symbols:
            if symbol in waiting and (not await waiting[symbol] or symbol not in self._watchers):
                failed.append(symbol)
                continue
            self._polled.add(symbol)
            self._keep(symbol)
        return failed

    def let_go(self, symbols: list[str]) -> None:
        for symbol in symbols:
            self._polled.discard(symbol)
            if not self._watchers.get(symbol, True):
                self._release_later(symbol)

    def _want(self, symbols: list[str]) -> dict[str, asyncio.Future[bool]]:
        """The confirmations to wait for: of symbols on their way upstream, or queued now."""
        waiting: dict[str, asyncio.Future[bool]] = {}
        for symbol in symbols:
            if symbol in self._watchers:
                continue
            confirmed = self._subscribing.get(symbol)
            if confirmed is None:
                confirmed = self._subscribing[symbol] = \
                    asyncio.get_running_loop().create_future()
                self._queued.append(symbol)
            waiting[symbol] = confirmed
        self._wake_upstream()
        return waiting

    def _join(self, session: Session, symbol: str) -> None:
        self._watchers[symbol].add(session)
        session.watch(symbol)
        self._keep(symbol)

    def _keep(self, symbol: str) -> None:
        release = self._releases.pop(symbol, None)
        if release is not None:
            release.cancel()

    # -- upstream ---------------------------------------------------------------------

    def _wake_upstream(self) -> None:
        if (self._queued or self._released) and self._upstream is None:
            self._upstream = asyncio.get_running_loop().create_task(
                self._change_upstream(), name="hub-upstream")

    async def _change_upstream(self) -> None:
        """One Redis command at a time, each carrying everything queued while the
        previous one was in flight. Releases go first: a symbol released and then wanted
        again was released before it was wanted, so UNSUBSCRIBE precedes SUBSCRIBE."""
        try:
            while self._queued or self._released:
                if self._released:
                    gone, self._released = self._released, []
                    await self._unsubscribe_upstream(gone)
                if self._queued:
                    batch, self._queued = self._queued, []
                    await self._subscribe_upstream(batch)
        finally:
            self._upstream = None

    async def _unsubscribe_upstream(self, symbols: list[str]) -> None:
        try:
            await self._bus.unsubscribe([names.tick_channel(s) for s in symbols])
        except (RedisError, OSError) as exc:
            # The listener resubscribes only what is still wanted when it reconnects.
            log.warning("redis unsubscribe failed", extra={"error": repr(exc)})
        log.info("symbols unsubscribed upstream",
                 extra={"symbols": symbols[:20], "count": len(symbols)})

    async def _subscribe_upstream(self, symbols: list[str]) -> None:
        confirmed = False
        try:
            with upstream_span("subscribe", symbols) as span:
                try:
                    await self._bus.subscribe([names.tick_channel(s) for s in symbols])
                except (RedisError, OSError) as exc:
                    log.warning("redis subscribe failed", extra={"symbols": symbols[:10],
                                                                 "error": repr(exc)})
                    span.record_exception(exc)
                else:
                    confirmed = True
                    for symbol in symbols:
                        self._watchers[symbol] = set()
                        # Released unless someone joins: a waiter may have gone meanwhile.
                        self._release_later(symbol)
                    self._announcements.subscribed(symbols)
                    log.info("symbols subscribed upstream",
                             extra={"symbols": symbols[:20], "count": len(symbols)})
        finally:
            # Whatever happened (even a bug, or shutdown), nobody waits forever.
            for symbol in symbols:
                self._subscribing.pop(symbol).set_result(confirmed)
            SYMBOLS.set(len(self._watchers))

    def _release_later(self, symbol: str) -> None:
        if symbol in self._polled or symbol in self._releases:
            return
        self._releases[symbol] = asyncio.get_running_loop().call_later(
            self._release_delay, self._release, symbol)

    def _release(self, symbol: str) -> None:
        """The release delay passed with nobody interested: unsubscribe upstream."""
        del self._releases[symbol]
        if self._watchers.get(symbol) or symbol in self._polled:
            return
        del self._watchers[symbol]
        self._latest.forget(symbol)
        SYMBOLS.set(len(self._watchers))
        with upstream_span("unsubscribe", [symbol]):
            self._announcements.unsubscribed([symbol])
        self._released.append(symbol)
        self._wake_upstream()

    # -- ticks ------------------------------------------------------------------------

    def dispatch_tick(self, channel: str, payload: bytes) -> None:
        """Called by the bus listener for every tick: decode once, offer to each watcher."""
        symbol = names.symbol_from_channel(channel)
        watchers = self._watchers.get(symbol)
        if watchers is None and symbol not in self._awaited:
            return
        try:
            tick = decode_tick(payload)
        except DecodeError as exc:
            log.warning("undecodable tick", extra={"channel": channel, "error": str(exc)})
            return
        if watchers is not None:
            self._latest.saw(tick)
        if symbol in self._awaited:
            self._cold_reads.delivered(tick)
        if not watchers:
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

    def pause(self) -> None:
        if self._held is None:
            self._held = {}

    def resume(self) -> None:
        held, self._held = self._held, None
        for symbol, (tick, frames) in (held or {}).items():
            for session in self._watchers.get(symbol, ()):
                session.offer(tick, frames)
