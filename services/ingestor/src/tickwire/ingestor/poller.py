"""The polling loop: fetch this replica's due symbols through the provider chain.

Every tick the loop syncs the replica's symbols (from its Kafka partitions), reads the
shared state of new ones from Redis, and starts a round for the due symbols not already in
flight, most deserving first (see scheduler). A round walks the providers in order; what one
provider does not deliver goes to the next. Rounds run concurrently, never two for one
symbol, so a slow provider delays only its own symbols.

Guarantees: only symbols this replica owns are requested; a quote is published only if it
is valid and differs from the last one; each DATA_STALE / recovered change is announced once.
`redis_ok` (the readiness the probes report) turns false on a failed Redis call and true
again within a step of Redis answering, even with nothing to poll (it then PINGs). A
replica that polls nothing makes no other Redis call, so it PINGs every
IDLE_PING_SECONDS too: an outage turns it unready as it would one that polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Container

from opentelemetry import trace
from opentelemetry.trace import Link
from redis.exceptions import RedisError

from tickwire.core.models import FeedState, StockQuote
from tickwire.core.telemetry import FLOW, TICK
from tickwire.ingestor.assignments import ActiveSymbols
from tickwire.ingestor.feed import FeedStore
from tickwire.ingestor.metrics import (FEED_STATUS_CHANGES, INGEST_LATENCY, OWNED_SYMBOLS,
                                       STALE_SYMBOLS, TICKS_PUBLISHED)
from tickwire.ingestor.lifetimes import KeyLifetimes
from tickwire.ingestor.publisher import TickPublisher
from tickwire.ingestor.runner import ProviderRunner
from tickwire.ingestor.scheduler import Scheduler

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("tickwire.ingestor")
REDIS_RECHECK_SECONDS = 1.0  # how long a step waits for the PING of `_recheck_redis`
IDLE_PING_SECONDS = 2.0  # how often a replica that polls nothing checks that Redis answers


class Poller:
    def __init__(self, runners: list[ProviderRunner], active: ActiveSymbols,
                 publisher: TickPublisher, feed: FeedStore, scheduler: Scheduler,
                 lifetimes: KeyLifetimes | None = None, clock: Callable[[], float] = time.time):
        self.runners = runners
        self.active = active
        self.publisher = publisher
        self.feed = feed
        self.scheduler = scheduler
        self.lifetimes = lifetimes
        self._clock = clock
        self._in_flight: set[str] = set()
        self._rounds: set[asyncio.Task] = set()
        self.redis_ok = True
        # Symbols a stream serves (streams/manager.py): not polled, and a poll answer for
        # one that arrives after it began streaming is dropped (the stream's is newer).
        self.streamed: Container[str] = frozenset()
        self.latency_warning_seconds = 1.0
        self._next_slow_warning = 0.0
        self._next_idle_ping = 0.0  # monotonic

    async def run(self) -> None:
        tick = min(0.25, max(0.02, self.scheduler.poll_interval / 4))
        try:
            while True:
                try:
                    await self.step()
                except Exception:  # a bug in one step must not end polling for good
                    log.exception("poll step failed")
                await asyncio.sleep(tick)
        finally:
            for task in self._rounds:
                task.cancel()
            for task in list(self._rounds):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def step(self) -> None:
        if not self.redis_ok:
            await self._recheck_redis()
        elif not self.scheduler.symbols and time.monotonic() >= self._next_idle_ping:
            await self._ping_while_idle()
        if self.lifetimes is not None:
            try:
                await self.lifetimes.write()
            except (RedisError, OSError) as exc:
                self._redis_failed("setting the lifetime of symbols' keys", exc)
                return
        owned = self.active.symbols()
        _, removed = self.scheduler.sync(
            {s: n for s, n in owned.items() if s not in self.streamed})
        for symbol in removed:
            self.publisher.forget(symbol)
        OWNED_SYMBOLS.set(len(self.scheduler.symbols))
        STALE_SYMBOLS.set(len(self.scheduler.stale_symbols()))
        if unloaded := self.scheduler.unloaded():
            try:
                shared = await self.feed.load(unloaded)
            except (RedisError, OSError) as exc:
                self._redis_failed("reading feed state", exc)
                return
            self.redis_ok = True
            now = self._clock()
            for symbol, state in shared.items():
                # A fetch time ahead of our clock (another host's skew) counts as now.
                fetched_at = min(state.fetched_at, now) if state.fetched_at else None
                self.scheduler.load(symbol, fetched_at, state.stale)
                if state.cached is not None:
                    self.publisher.adopt(state.cached)
        due = self.scheduler.due(self._clock(), self._in_flight)
        if due:
            self._in_flight.update(due)
            task = asyncio.create_task(self._round(due), name="poll-round")
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)

    def busy(self, symbol: str) -> bool:
        """Whether a poll round for `symbol` is in flight."""
        return symbol in self._in_flight

    async def _round(self, symbols: list[str]) -> None:
        """One round in a span: sampled like ticks, unless it is the first fetch of a symbol
        that just became active, which continues that subscription's trace (the first such
        symbol is the parent, the others are linked)."""
        origins = self.active.take_origins(symbols)
        links = [Link(trace.get_current_span(o).get_span_context()) for o in origins[1:]]
        with TRACER.start_as_current_span("poll round", context=origins[0] if origins else None,
                                          links=links, attributes={
                                              FLOW: TICK, "tickwire.symbols": symbols[:20],
                                              "tickwire.symbol_count": len(symbols),
                                              "tickwire.first_fetch": bool(origins)}):
            await self._fetch_round(symbols)

    async def _fetch_round(self, symbols: list[str]) -> None:
        started = time.monotonic()
        remaining = list(symbols)
        why_failed: dict[str, list[str]] = {}
        delivered: list[str] = []
        subscribers = {s: state.subscribers for s in symbols
                       if (state := self.scheduler.symbols.get(s)) is not None}
        try:
            for runner in self.runners:
                if not remaining:
                    break
                asked_at = time.time()  # wall clock: replicas order their quotes by it
                try:
                    outcome = await runner.fetch(remaining, subscribers)
                except (RedisError, OSError) as exc:
                    self._redis_failed(f"reading the {runner.name} budget", exc)
                    continue
                delivered += await self._publish(outcome.quotes, started, asked_at)
                for symbol, reason in outcome.failed.items():
                    why_failed.setdefault(symbol, []).append(reason)
                remaining = [s for s in remaining if s not in outcome.quotes]
            await self._settle(delivered, [s for s in remaining if s in why_failed], why_failed)
        except Exception:
            log.exception("poll round failed", extra={"symbols": symbols[:20]})
        finally:
            self._in_flight.difference_update(symbols)

    async def _publish(self, quotes: dict[str, StockQuote], started: float,
                       asked_at: float) -> list[str]:
        """Publish each quote that changed; returns the symbols now stored in Redis.
        `asked_at` (Unix seconds) is when the provider was asked: a quote asked for before
        the newest published one (another replica's, in a rebalance) is refused."""
        stored = []
        # A symbol that moved to a stream while this round was in flight is the stream's now.
        quotes = {symbol: quote for symbol, quote in quotes.items() if symbol not in self.streamed}
        try:
            outcomes = await self.publisher.publish_batch(list(quotes.values()), asked_at)
        except (RedisError, OSError) as exc:
            outcomes = [exc] * len(quotes)
        for symbol, tick in zip(quotes, outcomes):
            if isinstance(tick, Exception):
                self._redis_failed("publishing", tick)
                self.scheduler.postpone(symbol, self._clock())
                continue
            self.redis_ok = True
            stored.append(symbol)
            if tick is not None:
                TICKS_PUBLISHED.inc()
                latency = time.monotonic() - started
                INGEST_LATENCY.observe(latency)
                if latency > self.latency_warning_seconds:
                    self._warn_slow(symbol, latency)
        return stored

    async def _settle(self, delivered: list[str], failed: list[str],
                      why: dict[str, list[str]]) -> None:
        """Record the round in the schedule and Redis; announce staleness changes."""
        trace.get_current_span().set_attributes({"tickwire.delivered": len(delivered),
                                                 "tickwire.failed": len(failed)})
        now = self._clock()
        for symbol in delivered:
            self.scheduler.fetched(symbol, now)
        newly_stale = [s for s in failed if self.scheduler.failed(s, now)]
        try:
            if delivered:
                recovered = await self.feed.mark_fetched(delivered, now)
                if recovered:
                    await self._announce(FeedState.RECOVERED, recovered, "quotes flow again")
            if newly_stale:
                changed = await self.feed.mark_stale(newly_stale)
                if changed:
                    reasons = sorted({r for s in changed for r in why[s]})
                    await self._announce(FeedState.STALE, changed, "; ".join(reasons)[:240])
        except (RedisError, OSError) as exc:
            self._redis_failed("recording feed state", exc)
            # Not flagged in Redis, so not announced: let the next failure try again.
            self.scheduler.unflag(newly_stale)

    async def _announce(self, state: FeedState, symbols: list[str], reason: str) -> None:
        await self.feed.announce(state, symbols, reason)
        FEED_STATUS_CHANGES.labels(str(state)).inc(len(symbols))
        log.warning("feed status changed", extra={"state": str(state), "symbols": symbols[:20],
                                                  "reason": reason})

    def _warn_slow(self, symbol: str, latency: float) -> None:
        """A performance warning, at most every 30 s."""
        now = time.monotonic()
        if now >= self._next_slow_warning:
            self._next_slow_warning = now + 30.0
            log.warning("high ingest latency", extra={
                "symbol": symbol, "latency_ms": round(latency * 1000, 1),
                "threshold_ms": round(self.latency_warning_seconds * 1000)})

    async def _recheck_redis(self) -> None:
        """After a failure: a replica whose symbols are all streamed (or that owns none)
        may make no other Redis call that could show it is back."""
        try:
            await asyncio.wait_for(self.feed.ping(), REDIS_RECHECK_SECONDS)
        except (RedisError, OSError, asyncio.TimeoutError):
            return
        self.redis_ok = True
        log.info("redis answers again")

    async def _ping_while_idle(self) -> None:
        self._next_idle_ping = time.monotonic() + IDLE_PING_SECONDS
        try:
            await asyncio.wait_for(self.feed.ping(), REDIS_RECHECK_SECONDS)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._redis_failed("checking it answers (nothing to poll)", exc)

    def _redis_failed(self, doing: str, exc: BaseException) -> None:
        self.redis_ok = False
        log.warning(f"redis failed while {doing}", extra={"error": repr(exc)})

    async def describe(self) -> list[dict]:
        return [await runner.describe() for runner in self.runners]
