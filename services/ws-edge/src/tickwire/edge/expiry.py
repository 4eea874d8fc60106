"""When each session's token lapses: one heap for the whole edge, read by the sweep.

Guarantees: `due(now)` returns each session's warning once (when `warning` seconds or
less are left, only for sessions that can refresh) and its lapse once, both for the
token the session holds now: `schedule` again (a refresh) forgets the earlier token's
events. No timer or task per session: the cost is one heap entry per event, and the
sweep pops only what is due. Entries of forgotten sessions are dropped lazily, and the
heap is rebuilt whenever they outnumber the live ones.

Pure logic: time (Unix seconds, the clock `exp` is on) is passed in.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from itertools import count
from typing import NamedTuple

WARN = "warn"
LAPSE = "lapse"


class Due(NamedTuple):
    session: Hashable
    event: str  # WARN or LAPSE
    expires_at: float


class TokenExpiry:
    __slots__ = ("_warning", "_heap", "_generation", "_counter")

    def __init__(self, warning: float):
        self._warning = warning
        self._heap: list[tuple[float, int, Hashable, str, float]] = []
        self._generation: dict[Hashable, int] = {}  # session → the id of its current token
        self._counter = count()

    def schedule(self, session: Hashable, expires_at: float | None, refreshable: bool) -> None:
        """`session` now holds a token lapsing at `expires_at` (None: never)."""
        if expires_at is None:
            self._generation.pop(session, None)
            return
        generation = self._generation[session] = next(self._counter)
        if refreshable:
            heapq.heappush(self._heap, (expires_at - self._warning, generation, session, WARN,
                                        expires_at))
        heapq.heappush(self._heap, (expires_at, generation, session, LAPSE, expires_at))
        self._compact()

    def forget(self, session: Hashable) -> None:
        if self._generation.pop(session, None) is not None:
            self._compact()

    def due(self, now: float) -> list[Due]:
        heap, generation = self._heap, self._generation
        found: list[Due] = []
        while heap and heap[0][0] <= now:
            _, token, session, event, expires_at = heapq.heappop(heap)
            if generation.get(session) == token:
                found.append(Due(session, event, expires_at))
                if event == LAPSE:
                    del generation[session]
        return found

    def __len__(self) -> int:
        return len(self._generation)

    def _compact(self) -> None:
        self._heap = compacted(self._heap, self._generation)


def compacted(heap: list[tuple], generation: dict[Hashable, int]) -> list[tuple]:
    """`heap` (entries `(when, generation, key, …)`) without the entries whose key no
    longer holds that generation, once those outnumber the live ones; else `heap` as is.
    A heap of lazily dropped entries stays within a few times its live size."""
    if len(heap) > 64 and len(heap) > 4 * len(generation):
        heap = [e for e in heap if generation.get(e[2]) == e[1]]
        heapq.heapify(heap)
    return heap
