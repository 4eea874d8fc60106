"""Snapshot reads for many subscribes at once: what a reconnect storm asks of Redis.

Guarantees:
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
