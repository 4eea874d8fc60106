"""Offering each tick to its watchers without holding the event loop.

Guarantees:
- A dispatched tick is offered to every session that watched its symbol at dispatch and
  still watches it when its turn comes (a session that left is skipped).
- Ticks are offered in the order they were dispatched: while a fan-out is unfinished,
  later ticks wait behind it, so every client gets each symbol's seqs in order
  (DESIGN.md §3) and the sockets' writes go out in the order they did when a fan-out
  was one pass (a small tick overtaking a large fan-out would delay the large one's tail).
- One event-loop pass spends at most OFFER_BUDGET seconds on the offers of large
  fan-outs; what is left goes on in the next pass, after timers, reads and handshakes
  have had their turn. A tick of a symbol that a few thousand sockets watch is several
  milliseconds of offers, which otherwise stall the whole edge at once.
- Deferring never makes the edge fall behind: once the oldest unfinished fan-out has
  waited CATCH_UP_AFTER, a pass offers the whole backlog, as if nothing were sliced (an
  overloaded edge then shows it as loop lag, not as a queue that grows out of sight).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection

from opentelemetry import trace

from tickwire.core.models import Tick
from tickwire.edge.frames import TickFrames
from tickwire.edge.session import Session

OFFER_BUDGET = 0.001  # seconds of offers per event-loop pass, for large fan-outs
SLICE = 128  # offers between two looks at the clock; a fan-out this small goes inline
CATCH_UP_AFTER = 0.010  # seconds the oldest deferred fan-out may wait before a full pass


class _Pending:
    """One tick's unfinished fan-out."""

    __slots__ = ("tick", "frames", "sessions", "next", "span", "accepted", "since")

    def __init__(self, tick: Tick, frames: TickFrames, sessions: list[Session],
                 span: trace.Span | None, since: float):
        self.tick = tick
        self.frames = frames
        self.sessions = sessions
        self.next = 0
        self.span = span
        self.accepted = 0
        self.since = since


class FanOut:
    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 budget: float = OFFER_BUDGET, catch_up_after: float = CATCH_UP_AFTER) -> None:
        self._clock = clock
        self._budget = budget
        self._catch_up_after = catch_up_after
        self._backlog: deque[_Pending] = deque()

    @property
    def backlog(self) -> int:
        """Ticks whose fan-out is unfinished."""
        return len(self._backlog)

    def offer(self, tick: Tick, frames: TickFrames, watchers: Collection[Session],
              span: trace.Span | None = None) -> None:
        """Offer `tick` to `watchers` now, or, for a large fan-out or behind an unfinished
        one, over the next passes. `span` (a traced tick) is ended when its fan-out is,
        with the number of sessions that took it."""
        if span is None and len(watchers) <= SLICE and not self._backlog:
            for session in watchers:
                session.offer(tick, frames)
            return
        self._backlog.append(_Pending(tick, frames, list(watchers), span, self._clock()))
        if len(self._backlog) == 1:
            self._run()  # nothing ahead of it: start in this pass

    def _run(self) -> None:
        clock = self._clock
        backlog = self._backlog
        if not backlog:
            return
        now = clock()
        behind = now - backlog[0].since > self._catch_up_after
        deadline = float("inf") if behind else now + self._budget
        while backlog:
            pending = backlog[0]
            tick, frames, sessions = pending.tick, pending.frames, pending.sessions
            while pending.next < len(sessions):
                start = pending.next
                pending.next = start + SLICE
                for session in sessions[start:start + SLICE]:
                    pending.accepted += session.offer(tick, frames)
                if clock() > deadline and (pending.next < len(sessions) or len(backlog) > 1):
                    asyncio.get_running_loop().call_soon(self._run)
                    if pending.next >= len(sessions):
                        self._finish()
                    return
            self._finish()

    def _finish(self) -> None:
        pending = self._backlog.popleft()
        if pending.span is not None:
            pending.span.set_attribute("tickwire.recipients", pending.accepted)
            pending.span.end()
