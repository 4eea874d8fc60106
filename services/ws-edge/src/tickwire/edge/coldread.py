"""Cold reads: a REST read of a symbol with no quote yet waits briefly for its first tick.

Guarantees:
- Woken by the tick itself: the hub hands every tick of an awaited symbol to `delivered`
  as it dispatches it, so a waiter answers as soon as the tick reaches this edge; nothing
  polls Redis.
- No tick is missed between the cache read and the wait: the waiter is registered before
  the cache is read a second time.
- Bounded: at most `max_waiting` (request, symbol) waits at once on this edge; a read
  beyond that answers at once with what the cache holds. Readers of one symbol share one
  future, so memory grows with the waits, not with the ticks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge

from tickwire.core.models import Tick

WAITING = Gauge("tickwire_edge_cold_reads_waiting", "REST reads waiting for a first quote "
                "(one per symbol of a request)")
COLD_READS = Counter("tickwire_edge_cold_reads_total", "Waits of REST reads for a first quote, "
                     "by outcome", ["outcome"])

Latest = Callable[[list[str]], Awaitable[list[Tick | None]]]


class ColdReads:
    def __init__(self, wait_seconds: float, max_waiting: int):
        self.wait_seconds = wait_seconds
        self._max = max_waiting
        self._waiting = 0
        self._futures: dict[str, asyncio.Future[Tick]] = {}
        self._readers: dict[str, int] = {}

    @property
    def awaited(self) -> dict[str, asyncio.Future[Tick]]:
        """symbol → the future its first tick resolves (read by the hub on every tick)."""
        return self._futures

    def delivered(self, tick: Tick) -> None:
        """A tick of an awaited symbol reached this edge: wake its readers."""
        future = self._futures.pop(tick.symbol, None)
        if future is not None and not future.done():
            future.set_result(tick)

    async def first_quotes(self, symbols: list[str], latest: Latest) -> dict[str, Tick]:
        """The quotes of `symbols` (none cached a moment ago), each waited for up to
        `wait_seconds` as far as the bound allows; symbols with none are left out."""
        awaited = symbols[:max(0, self._max - self._waiting)]
        if self.wait_seconds <= 0 or not awaited:
            return {}
        futures = {symbol: self._expect(symbol) for symbol in awaited}
        self._waiting += len(awaited)
        WAITING.set(self._waiting)
        try:
            # Read again now that a tick would wake us: one published in between is cached.
            found = {s: t for s, t in zip(awaited, await latest(awaited)) if t is not None}
            COLD_READS.labels("cached").inc(len(found))
            pending = [futures[s] for s in awaited if s not in found]
            if pending:
                await asyncio.wait(pending, timeout=self.wait_seconds)
            for symbol in awaited:
                future = futures[symbol]
                if symbol not in found and future.done() and not future.cancelled():
                    found[symbol] = future.result()
                    COLD_READS.labels("tick").inc()
            COLD_READS.labels("timeout").inc(len(awaited) - len(found))
        finally:
            self._waiting -= len(awaited)
            WAITING.set(self._waiting)
            for symbol in awaited:
                self._done_with(symbol)
        return found

    def _expect(self, symbol: str) -> asyncio.Future[Tick]:
        future = self._futures.get(symbol)
        if future is None:
            future = self._futures[symbol] = asyncio.get_running_loop().create_future()
        self._readers[symbol] = self._readers.get(symbol, 0) + 1
        return future

    def _done_with(self, symbol: str) -> None:
        """The last reader of a symbol gone: its future goes too (delivered or not)."""
        self._readers[symbol] -= 1
        if self._readers[symbol] == 0:
            del self._readers[symbol]
            future = self._futures.get(symbol)
            if future is not None and not future.done():
                future.cancel()
            self._futures.pop(symbol, None)
