"""Conflation at the source: at most `per_second` publishes per symbol in any second,
always of the newest state.

`offer(symbol)` says the symbol's state changed. It is published as soon as the symbol's
budget allows (on the next point of a `BATCH_GRID_SECONDS` grid, see below); offers
meanwhile fold into that one publish, which reads the state when it runs. The budget: at
most `per_second` publish starts in any one-second window (for rates under 1: one per
1/per_second seconds), and starts at least half the average spacing apart. So a symbol
trading at about the limit is published as it trades, without waiting for a fixed slot,
and a hot one is spread over the second, not sent in one burst. A symbol has at most one
publish in flight, so its ticks leave in the order of the states they carry.
Symbols that come due within one grid interval are published together, in one call
(`publish(symbols)`) at the interval's end: one batch of round trips to Redis instead of
one per symbol or per received frame (a batch's fixed cost, a write, a read, a task and
a span, outweighed its ticks' when it started once per frame).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

BATCH_GRID_SECONDS = 0.002  # due symbols start on this grid of the loop's clock, together


class _Slot:
    __slots__ = ("starts", "busy", "dirty", "timer")

    def __init__(self, count: int) -> None:
        self.starts: deque[float] = deque(maxlen=count)  # the newest publish starts
        self.busy = False     # a publish scheduled or running
        self.dirty = False    # offered while busy
        self.timer: asyncio.TimerHandle | None = None


class Conflator:
    def __init__(self, per_second: float, publish: Callable[[list[str]], Awaitable[None]],
                 clock: Callable[[], float] = time.monotonic):
        self._count = max(1, int(per_second))
        self._window = self._count / per_second          # seconds holding `_count` starts
        self._spacing = self._window / self._count / 2   # the least gap between two starts
        self._publish = publish
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._tasks: set[asyncio.Task] = set()
        self._due: list[tuple[str, _Slot]] = []
        self._flushing: asyncio.TimerHandle | None = None

    def offer(self, symbol: str) -> None:
        slot = self._slots.get(symbol)
        if slot is None:
            slot = self._slots[symbol] = _Slot(self._count)
        if slot.busy:
            slot.dirty = True
            return
        self._schedule(symbol, slot)

    def _schedule(self, symbol: str, slot: _Slot) -> None:
        slot.busy = True
        starts = slot.starts
        next_at = starts[-1] + self._spacing if starts else 0.0
        if len(starts) == self._count:
            next_at = max(next_at, starts[0] + self._window)
        wait = next_at - self._clock()
        if wait <= 0:
            self._start(symbol, slot)
        else:
            slot.timer = asyncio.get_running_loop().call_later(wait, self._start, symbol, slot)

    def _start(self, symbol: str, slot: _Slot) -> None:
        """Due now: join the batch that starts on the next grid point."""
        slot.timer = None
        if not self._due:
            loop = asyncio.get_running_loop()
            self._flushing = loop.call_at(
                math.ceil(loop.time() / BATCH_GRID_SECONDS) * BATCH_GRID_SECONDS, self._flush)
        self._due.append((symbol, slot))

    def _flush(self) -> None:
        self._flushing = None
        due, self._due = self._due, []
        now = self._clock()
        for _, slot in due:  # the start counted is the batch's: never before its budget
            slot.dirty = False
            slot.starts.append(now)
        task = asyncio.create_task(self._run(due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, due: list[tuple[str, _Slot]]) -> None:
        try:
            await self._publish([symbol for symbol, _ in due])
        except Exception:  # one failed publish must not stop the symbols' next ones
            log.exception("stream publish failed", extra={"symbols": [s for s, _ in due][:20]})
        for symbol, slot in due:
            slot.busy = False
            if slot.dirty and self._slots.get(symbol) is slot:
                self._schedule(symbol, slot)

    def drop(self, symbol: str) -> None:
        """Forget a symbol: a publish not started yet will not be."""
        slot = self._slots.pop(symbol, None)
        if slot is not None and slot.timer is not None:
            slot.timer.cancel()

    async def close(self) -> None:
        for symbol in list(self._slots):
            self.drop(symbol)
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing, self._due = None, []
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
