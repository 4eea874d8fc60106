"""Conflation at the source: at most `per_second` publishes per symbol in any second
(counted when they come due), always of the newest state.

`offer(symbol)` says the symbol's state changed. It is published as soon as the symbol's
budget allows (`RateBudget`: at most `per_second` publishes come due in any one-second
window, for rates under 1 one per 1/per_second seconds, at least half the average spacing
apart); offers meanwhile fold into that one publish, which reads the state when it runs.
A publish starts on the next point of a `BATCH_GRID_SECONDS` grid after it came due (see
below), and the budget counts the time it came due: the grid's wait, or a late loop,
never pushes the next publishes back, so a symbol trading right at the limit is published
as it trades, with the same latency after an hour as after a second, and a hot one is
spread over the second, not sent in one burst. A symbol has at most one publish in flight,
so its ticks leave in the order of the states they carry.
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


class RateBudget:
    """At most `count` claims in any `window` seconds, at least `spacing` apart. `claim(now)`
    books the earliest time at or after `now` within the budget and returns it."""

    __slots__ = ("_count", "_window", "_spacing", "_claims")

    def __init__(self, count: int, window: float, spacing: float) -> None:
        self._count, self._window, self._spacing = count, window, spacing
        self._claims: deque[float] = deque(maxlen=count)  # the newest ones

    def claim(self, now: float) -> float:
        claims = self._claims
        at = now
        if claims:
            at = max(at, claims[-1] + self._spacing)
            if len(claims) == self._count:
                at = max(at, claims[0] + self._window)
        claims.append(at)
        return at


class _Slot:
    __slots__ = ("budget", "busy", "dirty", "timer")

    def __init__(self, budget: RateBudget) -> None:
        self.budget = budget
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
            slot = self._slots[symbol] = _Slot(
                RateBudget(self._count, self._window, self._spacing))
        if slot.busy:
            slot.dirty = True
            return
        self._schedule(symbol, slot)

    def _schedule(self, symbol: str, slot: _Slot) -> None:
        slot.busy = True
        now = self._clock()
        wait = slot.budget.claim(now) - now
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
        for _, slot in due:
            slot.dirty = False
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
