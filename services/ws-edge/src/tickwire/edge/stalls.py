"""Evidence of event-loop stalls: how late the loop runs a timer, how long the garbage
collector's collections of the older generations take, and (when asked) the stack the
loop is stuck in while it stalls (`StallTracer`).

A stall holds up every tick in flight on this edge, so it shows up in latency p99
before anywhere else; these two series say whether the loop was stalled and whether a
collection was the cause.

Cost: one timer every 50 ms while ticks flow, every second while none does (an idle
process woken 20 times a second burns ~3 ms of CPU a second on a VM, for samples of a
loop with nothing to do), and two clock reads per collection (an observation only
for generations 1 and 2, which are rare; generation 0 runs thousands of times a second
and takes microseconds).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable

from prometheus_client import Histogram

log = logging.getLogger(__name__)

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
PROBE_SECONDS = 0.05
IDLE_PROBE_SECONDS = 1.0

LOOP_LAG = Histogram("tickwire_edge_loop_lag_seconds",
                     "How late the event loop ran a timer (due every 50 ms while ticks flow)",
                     buckets=_BUCKETS)
GC_PAUSE = Histogram("tickwire_edge_gc_pause_seconds",
                     "Garbage collections of generations 1 and 2, by generation",
                     ["generation"], buckets=_BUCKETS)


async def probe_loop_lag(work: Callable[[], int], every: float = PROBE_SECONDS,
                         idle_every: float = IDLE_PROBE_SECONDS) -> None:
    """Observe how late a timer runs, every `every` seconds while `work()` (a count of
    work done, such as ticks received) moves, every `idle_every` while it does not.
    Timed with perf_counter: uvloop's loop.time() counts whole milliseconds, which read
    an idle loop's lateness as 0 or 2 ms."""
    clock = time.perf_counter
    done = work()
    while True:
        done, before = work(), done
        wait = every if done != before else idle_every
        due = clock() + wait
        await asyncio.sleep(wait)
        LOOP_LAG.observe(max(0.0, clock() - due))


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


class StallTracer:
    """Logs the event loop's stack when it has not run for `threshold` seconds: a watchdog
    thread wakes four times per threshold and compares the time against a beat the loop
    renews as often. At most one line per stall and one per `quiet` seconds, so a loop
    that is simply saturated does not flood the log. The stack is the loop thread's own
    (what holds it), taken while the stall lasts."""

    def __init__(self, threshold: float, quiet: float = 1.0):
        self._threshold = threshold
        self._quiet = quiet
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id = threading.get_ident()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._renew()
        threading.Thread(target=self._watch, name="stall-tracer", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _renew(self) -> None:
        self._beat = time.monotonic()
        if not self._stop.is_set():
            self._loop.call_later(self._threshold / 4, self._renew)

    def _watch(self) -> None:
        reported_beat, last_report = 0.0, 0.0
        while not self._stop.wait(self._threshold / 4):
            beat, now = self._beat, time.monotonic()
            if now - beat < self._threshold or beat == reported_beat \
                    or now - last_report < self._quiet:
                continue
            frame = sys._current_frames().get(self._thread_id)
            if frame is None or self._beat != beat:
                continue  # the stall ended meanwhile: the stack would be of what came after
            reported_beat, last_report = beat, now
            log.warning("event loop stalled", extra={
                "stalled_ms": round((now - beat) * 1000, 1),
                "stack": "".join(traceback.format_stack(frame, limit=30))})
