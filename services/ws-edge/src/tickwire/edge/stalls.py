"""Evidence of event-loop stalls: how late the loop runs a timer, and how long the
garbage collector's collections of the older generations take.

A stall holds up every tick in flight on this edge, so it shows up in latency p99
before anywhere else; these two series say whether the loop was stalled and whether a
collection was the cause.

Cost: one timer every 50 ms, and two clock reads per collection (an observation only
for generations 1 and 2, which are rare; generation 0 runs thousands of times a second
and takes microseconds).
"""

from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import Histogram

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
PROBE_SECONDS = 0.05

LOOP_LAG = Histogram("tickwire_edge_loop_lag_seconds",
                     "How late the event loop ran a timer due every 50 ms", buckets=_BUCKETS)
GC_PAUSE = Histogram("tickwire_edge_gc_pause_seconds",
                     "Garbage collections of generations 1 and 2, by generation",
                     ["generation"], buckets=_BUCKETS)


async def probe_loop_lag(every: float = PROBE_SECONDS) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every
        await asyncio.sleep(every)
        LOOP_LAG.observe(max(0.0, loop.time() - due))


class _GcTimer:
    __slots__ = ("started", "by_generation")

    def __init__(self) -> None:
        self.started = 0.0
        self.by_generation = {g: GC_PAUSE.labels(str(g)) for g in (1, 2)}

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        histogram = self.by_generation.get(info["generation"])
        if histogram is not None:
            histogram.observe(time.perf_counter() - self.started)


def time_collections() -> None:
    """Time every collection from now on (once per process)."""
    if not any(isinstance(callback, _GcTimer) for callback in gc.callbacks):
        gc.callbacks.append(_GcTimer())
