"""Which of this replica's symbols stream, and turning their trades into ticks.

Interest drives streams. Every step the manager ranks the replica's active symbols by
watchers (ties: those already streaming, then by name) and streams the top ones, as many
as the streams have room for, filling the streams in their configured order; the rest are
polled. A symbol starts on polling: it is promoted once it has a seed (its session
aggregate in Redis, or the cached tick of its first REST quote), and never while a poll
round for it is in flight, so the stream's ticks follow the REST quote, never precede it.
Stream and poll ticks go through one publisher, so `seq` runs on without a gap or repeat.

A streamed symbol goes back to polling when it is no longer this replica's, when it falls
out of the top, when its stream loses room (a refused key, a lost lease), when the
provider rejects it (it then waits before another try) or when its stream has been silent
for it past the freshness window while the market is open (always, for the simulated
stream), which also flags it stale; polling's next quote announces the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace
from prometheus_client import Counter
from redis.exceptions import RedisError

from tickwire.core.models import FeedState, StockQuote
from tickwire.core.telemetry import FLOW, SUBSCRIPTION
from tickwire.ingestor.assignments import ActiveSymbols
from tickwire.ingestor.feed import FeedStore
from tickwire.ingestor.metrics import (FEED_STATUS_CHANGES, STREAM_FALLBACKS, STREAM_LATENCY,
                                       STREAM_SYMBOLS, STREAM_TICKS, STREAM_TRADES,
                                       TICKS_PUBLISHED)
from tickwire.ingestor.publisher import TickPublisher
from tickwire.ingestor.streams.base import Trade
from tickwire.ingestor.streams.conflate import Conflator
from tickwire.ingestor.streams.session import Session, SessionStore, market_open, session_of

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("tickwire.ingestor")

STEP_SECONDS = 0.25
CHECKPOINT_SECONDS = 1.0
REJECTED_PAUSE_SECONDS = 300.0  # a symbol the provider refused is not offered again before


class Stream(Protocol):
    name: str
    cap: int
    source: str
    always_live: bool
    held: set[str]

    def room(self) -> int: ...
    def want(self, symbols: set[str], interested: bool) -> None: ...
    def describe(self) -> dict: ...
    async def run(self) -> None: ...


@dataclass(slots=True)
class _Streamed:
    stream: str
    session: Session
    since: float                  # monotonic: when it was promoted
    last_trade: float | None = None
    dirty: bool = False           # moved since the last checkpoint


class StreamManager:
    def __init__(self, active: ActiveSymbols, publisher: TickPublisher, feed: FeedStore,
                 sessions: SessionStore, max_ticks_per_second: float, freshness_seconds: float,
                 poll_busy: Callable[[str], bool] = lambda symbol: False,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.active = active
        self.publisher = publisher
        self.feed = feed
        self.sessions = sessions
        self.freshness_seconds = freshness_seconds
        self.silence_pause_seconds = freshness_seconds * 3
        self.streams: list[Stream] = []
        self._by_name: dict[str, Stream] = {}
        self._poll_busy = poll_busy
        self._clock = clock
        self._wall = wall
        self.streamed: dict[str, _Streamed] = {}
        self._paused: dict[str, float] = {}       # symbol → monotonic time it may stream again
        self._unsaved: dict[str, Session] = {}    # sessions of demoted symbols, not yet saved
        self._conflator = Conflator(max_ticks_per_second, self._publish, clock)
        # Labelled counters looked up once: they are bumped per frame of trades and per batch.
        self._trades: dict[str, Counter] = {}
        self._ticks: dict[str, Counter] = {}
        self.redis_ok = True

    def add(self, stream: Stream) -> None:
        self.streams.append(stream)
        self._by_name[stream.name] = stream
        self._trades[stream.name] = STREAM_TRADES.labels(stream.name)
        self._ticks[stream.name] = STREAM_TICKS.labels(stream.name)

    # -- from the streams -------------------------------------------------------------

    def on_trades(self, stream: str, trades: list[Trade]) -> None:
        """Trades that arrived together, in order: each moves its symbol's session and
        offers the symbol for publishing; a late trade of a symbol just handed back (or
        streamed elsewhere) is dropped. Counted once per call, not per trade."""
        streamed, offer, now = self.streamed, self._conflator.offer, self._clock()
        taken = 0
        for trade in trades:
            entry = streamed.get(trade.symbol)
            if entry is None or entry.stream != stream:
                continue
            taken += 1
            entry.session.apply(trade)
            entry.last_trade = now
            entry.dirty = True
            offer(trade.symbol)
        if taken:
            self._trades[stream].inc(taken)

    def on_rejected(self, stream: str, symbols: list[str], reason: str) -> None:
        for symbol in symbols:
            entry = self.streamed.get(symbol)
            if entry is not None and entry.stream == stream:
                self._demote(symbol, "rejected", REJECTED_PAUSE_SECONDS)

    def price_of(self, symbol: str) -> float | None:
        entry = self.streamed.get(symbol)
        return entry.session.price if entry is not None else None

    async def _publish(self, symbols: list[str]) -> None:
        """Publish the newest state of the symbols still streamed, in one batch."""
        quotes, received = [], {}
        for symbol in symbols:
            entry = self.streamed.get(symbol)
            if entry is not None:
                quotes.append(entry.session.quote(symbol, self._by_name[entry.stream].source))
                received[symbol] = (entry.stream, entry.last_trade)
        if not quotes:
            return
        try:
            outcomes = await self.publisher.publish_batch(quotes)
        except (RedisError, OSError) as exc:
            self._redis_failed("publishing stream ticks", exc)
            return
        if failed := [o for o in outcomes if isinstance(o, Exception)]:
            self._redis_failed("publishing stream ticks", failed[0])
        else:
            self.redis_ok = True
        ticks = [o for o in outcomes if o is not None and not isinstance(o, Exception)]
        now = self._clock()
        TICKS_PUBLISHED.inc(len(ticks))
        per_stream: dict[str, int] = {}
        for tick in ticks:
            stream, at = received[tick.symbol]
            per_stream[stream] = per_stream.get(stream, 0) + 1
            if at is not None:
                STREAM_LATENCY.observe(now - at)
        for stream, count in per_stream.items():
            self._ticks[stream].inc(count)

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(s.run(), name=f"stream-{s.name}") for s in self.streams]
        next_checkpoint = self._clock() + CHECKPOINT_SECONDS
        try:
            while True:
                try:
                    await self.step()
                    if self._clock() >= next_checkpoint:
                        next_checkpoint = self._clock() + CHECKPOINT_SECONDS
                        await self.checkpoint()
                except Exception:  # a bug in one step must not end streaming for good
                    log.exception("stream step failed")
                await asyncio.sleep(STEP_SECONDS)
        finally:
            await self._conflator.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(RedisError, OSError):
                await self.checkpoint()

    async def step(self) -> None:
        owned = self.active.symbols()
        now = self._clock()
        for symbol in [s for s in self.streamed if s not in owned]:
            self._demote(symbol, "disowned", 0.0)
        await self._silence(now)
        self._paused = {s: t for s, t in self._paused.items() if t > now and s in owned}
        eligible = [s for s in owned if s not in self._paused]
        eligible.sort(key=lambda s: (-owned[s], s not in self.streamed, s))
        rooms = {stream.name: stream.room() for stream in self.streams}
        top = set(eligible[:sum(rooms.values())])
        for symbol in [s for s in self.streamed if s not in top]:
            self._demote(symbol, "capacity", 0.0)
        for stream in self.streams:  # a stream that lost room hands back its least watched
            mine = sorted((s for s, e in self.streamed.items() if e.stream == stream.name),
                          key=lambda s: (owned.get(s, 0), s))
            for symbol in mine[:max(0, len(mine) - rooms[stream.name])]:
                self._demote(symbol, "capacity", 0.0)
        await self._promote([s for s in eligible if s in top and s not in self.streamed
                             and not self._poll_busy(s)], rooms, owned)
        left = len(eligible)
        for stream in self.streams:
            mine = {s for s, e in self.streamed.items() if e.stream == stream.name}
            stream.want(mine, interested=left > 0)
            left -= rooms[stream.name]
            STREAM_SYMBOLS.labels(stream.name).set(len(mine))

    async def _silence(self, now: float) -> None:
        is_open = market_open(self._wall())  # once per step: it is not cheap, per symbol
        silent = []
        for symbol, entry in list(self.streamed.items()):
            stream = self._by_name[entry.stream]
            quiet_since = entry.last_trade if entry.last_trade is not None else entry.since
            if (stream.always_live or is_open) and \
                    now - quiet_since > self.freshness_seconds:
                silent.append(symbol)
                self._demote(symbol, "silent", self.silence_pause_seconds)
        if not silent:
            return
        try:
            changed = await self.feed.mark_stale(silent)
            if changed:
                await self.feed.announce(FeedState.STALE, changed, "stream silent")
                FEED_STATUS_CHANGES.labels(str(FeedState.STALE)).inc(len(changed))
                log.warning("feed status changed", extra={
                    "state": "stale", "symbols": changed[:20], "reason": "stream silent"})
        except (RedisError, OSError) as exc:
            self._redis_failed("flagging silent symbols stale", exc)

    async def _promote(self, candidates: list[str], rooms: dict[str, int],
                       owned: dict[str, int]) -> None:
        if not candidates:
            return
        try:
            seeds = await self._seeds(candidates)
        except (RedisError, OSError) as exc:
            self._redis_failed("reading session aggregates", exc)
            return
        used = {name: 0 for name in rooms}
        for entry in self.streamed.values():
            used[entry.stream] += 1
        for symbol in candidates:
            seed = seeds.get(symbol)
            stream = next((s for s in self.streams if used[s.name] < rooms[s.name]), None)
            if seed is None or stream is None:
                continue
            used[stream.name] += 1
            self.streamed[symbol] = _Streamed(stream.name, seed, self._clock())
            origin = self.active.take_stream_origin(symbol)
            if origin is not None:  # the activation's trace goes on here, as in polling
                with TRACER.start_as_current_span("stream subscribe", context=origin, attributes={
                        FLOW: SUBSCRIPTION, "tickwire.symbol": symbol,
                        "tickwire.stream": stream.name, "tickwire.subscribers": owned[symbol]}):
                    pass
            log.info("symbol streams", extra={"symbol": symbol, "stream": stream.name})

    async def _seeds(self, symbols: list[str]) -> dict[str, Session]:
        """Per symbol: its saved session of today, else one seeded from the cached tick
        (its REST quote), else any saved session; none yet without either."""
        saved = await self.sessions.load(symbols)
        cached = await self.feed.load(symbols)
        wall = self._wall()
        seeds = {}
        for symbol in symbols:
            session, state = saved.get(symbol), cached.get(symbol)
            if session is not None and session.session == session_of(wall):
                seeds[symbol] = session
            elif state is not None and state.cached is not None:
                try:
                    quote = StockQuote.from_wire(state.cached.data)
                except (KeyError, TypeError, ValueError):
                    continue
                seeds[symbol] = Session.seed(quote, state.cached.published_at / 1e9)
            elif session is not None:
                seeds[symbol] = session
        return seeds

    def _demote(self, symbol: str, reason: str, pause: float) -> None:
        entry = self.streamed.pop(symbol, None)
        if entry is None:
            return
        self._conflator.drop(symbol)
        if entry.dirty:
            self._unsaved[symbol] = entry.session
        if pause:
            self._paused[symbol] = self._clock() + pause
        STREAM_FALLBACKS.labels(entry.stream, reason).inc()
        log.info("symbol back to polling", extra={"symbol": symbol, "stream": entry.stream,
                                                  "reason": reason})

    async def checkpoint(self) -> None:
        """Save the sessions that moved and record the symbols as fetched (so polling,
        should it take over, resumes from now)."""
        moved = dict(self._unsaved)
        for symbol, entry in self.streamed.items():
            if entry.dirty:
                moved[symbol] = entry.session
        if not moved:
            return
        try:
            await self.sessions.save(moved, self.active.symbols)
            recovered = await self.feed.mark_fetched(list(moved), self._wall())
            if recovered:
                await self.feed.announce(FeedState.RECOVERED, recovered, "stream trades flow")
                FEED_STATUS_CHANGES.labels(str(FeedState.RECOVERED)).inc(len(recovered))
        except (RedisError, OSError) as exc:
            self._redis_failed("saving session aggregates", exc)
            return
        self.redis_ok = True
        self._unsaved.clear()
        for symbol in moved:
            if (entry := self.streamed.get(symbol)) is not None:
                entry.dirty = False

    def _redis_failed(self, doing: str, exc: BaseException) -> None:
        if self.redis_ok:
            log.warning(f"redis failed while {doing}", extra={"error": repr(exc)})
        self.redis_ok = False

    def describe(self) -> list[dict]:
        return [{"kind": "stream", **stream.describe()} for stream in self.streams]
