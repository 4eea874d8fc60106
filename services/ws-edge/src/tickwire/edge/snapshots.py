"""Where a subscribe's snapshots come from: this edge's own copy of the newest tick of
each symbol it holds (`LatestTicks`), else Redis, read for many subscribes at once
(`SnapshotReader`): what a reconnect storm asks of Redis.

SnapshotReader guarantees:
- Every `latest` call made while a read is in flight, or in the same event-loop pass as
  the first, is answered by ONE `MGET` of the symbols they asked for together: at most
  one read is in flight, so a storm of subscribes costs Redis one connection and one
  round trip per batch, never one per client (redis-py's pool holds 100 connections
  and refuses the 101st).
- Each caller gets the cached tick of each symbol it asked for, in its order (None
  where nothing is cached). A failed read fails every call of its batch with its error;
  the next batch tries again.
"""

from __future__ import annotations

import asyncio

from tickwire.core.models import Tick
from tickwire.core.tickbus import TickBus


class LatestTicks:
    """The newest tick of each symbol the hub holds upstream, so that a symbol's snapshot
    is read from Redis once per hold, not once per subscribe.

    Guarantees: `latest` answers what a Redis read made now would (the ingestor caches
    and publishes a tick in one atomic step, so the newest tick delivered on a channel
    is the cached one), or older only by what is still in flight to this edge:
    - the hub reports every tick of a held symbol (`saw`; an older one than what is
      known, as a replay after a resubscribe may be, changes nothing), and `forget`s a
      symbol it stops holding;
    - a Redis read is kept only if it was made while the bus was connected, no tick of
      its symbol arrived meanwhile (that one is newer), nothing was forgotten meanwhile
      (the symbol may have been released and held again, with ticks this edge never saw
      in between) and the bus had no gap meanwhile;
    - ticks published while a subscriber connection was down never arrive, so every
      entry is dropped whenever the bus reports a gap (`TickBus.gaps`: a connection or
      channel lost, and again once it is back).
    While a symbol is held it is active, so the ingestor keeps its cache key without a
    TTL; an operator deleting the key (FLUSHDB) is not seen here until the next tick.
    Callers ask only about held symbols (the hub's `latest` sees to it)."""

    def __init__(self, bus: TickBus):
        self._bus = bus
        self._reads = SnapshotReader(bus)  # concurrent subscribes share one MGET
        self._known: dict[str, Tick | None] = {}  # None: Redis had none, and none came since
        self._gaps = bus.gaps  # the bus's count the entries date from
        self._forgotten = 0

    def saw(self, tick: Tick) -> None:
        self._check()
        known = self._known.get(tick.symbol)
        if known is None or tick.is_newer_than(known.epoch, known.seq):
            self._known[tick.symbol] = tick

    def forget(self, symbol: str) -> None:
        self._forgotten += 1
        self._known.pop(symbol, None)

    async def latest(self, symbols: list[str]) -> list[Tick | None]:
        """The newest tick of each held symbol (None: none exists yet); raises what the
        Redis read raised when some had to be read."""
        self._check()
        missing = [s for s in symbols if s not in self._known]
        if not missing:
            return [self._known[s] for s in symbols]
        keep = self._bus.connected.is_set()
        gaps, forgotten = self._bus.gaps, self._forgotten
        read = dict(zip(missing, await self._reads.latest(missing)))
        self._check()
        if keep and self._bus.gaps == gaps and self._forgotten == forgotten:
            for symbol, tick in read.items():
                self._known.setdefault(symbol, tick)  # a tick seen meanwhile is newer
        return [self._known[s] if s in self._known else read[s] for s in symbols]

    async def read(self, symbols: list[str]) -> list[Tick | None]:
        """Symbols not held, straight from Redis (in the same batched reads); nothing kept."""
        return await self._reads.latest(symbols)

    def _check(self) -> None:
        if self._bus.gaps != self._gaps:
            self._known.clear()
            self._gaps = self._bus.gaps


class SnapshotReader:
    def __init__(self, bus: TickBus):
        self._bus = bus
        self._waiting: list[tuple[list[str], asyncio.Future[list[Tick | None]]]] = []
        self._reader: asyncio.Task | None = None

    async def latest(self, symbols: list[str]) -> list[Tick | None]:
        if not symbols:
            return []
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Tick | None]] = loop.create_future()
        self._waiting.append((symbols, answer))
        if self._reader is None:
            # The task's first step runs on the next pass: this pass's callers join it.
            self._reader = loop.create_task(self._read(), name="snapshot-reads")
        return await answer

    async def _read(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                wanted = list(dict.fromkeys(s for symbols, _ in batch for s in symbols))
                try:
                    ticks = dict(zip(wanted, await self._bus.latest(wanted)))
                except Exception as exc:  # every caller of the batch sees it
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for symbols, answer in batch:
                    if not answer.done():  # a caller that went away meanwhile
                        answer.set_result([ticks[s] for s in symbols])
        finally:
            # Cancelled (shutdown) or broken: nobody waits forever.
            for _, answer in self._waiting:
                if not answer.done():
                    answer.cancel()
            self._waiting = []
            self._reader = None
