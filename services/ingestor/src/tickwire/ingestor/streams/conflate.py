"""Conflation at the source: at most `per_second` publishes per symbol, always of the
newest state.

`offer(symbol)` says the symbol's state changed. It is published at once when the
symbol's last publish started at least 1/per_second ago, else when that time comes; offers
meanwhile fold into that one publish, which reads the state when it runs. A symbol has at
most one publish in flight, so its ticks leave in the order of the states they carry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class _Slot:
    __slots__ = ("next_at", "busy", "dirty", "timer")

    def __init__(self) -> None:
        self.next_at = 0.0
        self.busy = False     # a publish scheduled or running
        self.dirty = False    # offered while busy
        self.timer: asyncio.TimerHandle | None = None


class Conflator:
    def __init__(self, per_second: float, publish: Callable[[str], Awaitable[None]],
                 clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / per_second
        self._publish = publish
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._tasks: set[asyncio.Task] = set()

    def offer(self, symbol: str) -> None:
        slot = self._slots.get(symbol)
        if slot is None:
            slot = self._slots[symbol] = _Slot()
        if slot.busy:
            slot.dirty = True
            return
        self._schedule(symbol, slot)

    def _schedule(self, symbol: str, slot: _Slot) -> None:
        slot.busy = True
        wait = slot.next_at - self._clock()
        if wait <= 0:
            self._start(symbol, slot)
        else:
            slot.timer = asyncio.get_running_loop().call_later(wait, self._start, symbol, slot)

    def _start(self, symbol: str, slot: _Slot) -> None:
        slot.timer = None
        slot.dirty = False
        slot.next_at = self._clock() + self.interval
        task = asyncio.create_task(self._run(symbol, slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, symbol: str, slot: _Slot) -> None:
        try:
            await self._publish(symbol)
        except Exception:  # one failed publish must not stop the symbol's next ones
            log.exception("stream publish failed", extra={"symbol": symbol})
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
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
