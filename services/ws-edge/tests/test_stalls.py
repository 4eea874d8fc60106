"""StallTracer: a stalled event loop gets one log line with the stack it is stuck in."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tickwire.edge import stalls
from tickwire.edge.stalls import StallTracer

pytestmark = pytest.mark.asyncio


def _hold_the_loop(until_logged: list, at_least: float, at_most: float) -> None:
    """CPU work on the loop's thread, the way a long callback stalls it: for `at_least`
    seconds and then until a record is in `until_logged` (the watchdog thread may get the
    CPU late on a loaded machine), giving up after `at_most`."""
    started = time.monotonic()
    while True:
        held = time.monotonic() - started
        if held >= at_most or (held >= at_least and until_logged):
            return


async def test_a_stall_is_logged_once_with_the_stack_that_holds_the_loop(caplog):
    caplog.set_level(logging.WARNING, logger="tickwire.edge.stalls")
    tracer = StallTracer(threshold=0.05, quiet=0.0)
    tracer.start()
    try:
        _hold_the_loop(caplog.records, at_least=0.2, at_most=30.0)
        await asyncio.sleep(0)
    finally:
        tracer.stop()
    stalls = [r for r in caplog.records if r.message == "event loop stalled"]
    assert len(stalls) == 1
    assert "_hold_the_loop" in stalls[0].stack
    assert stalls[0].stalled_ms >= 50


async def test_the_lag_probe_samples_often_only_while_work_moves(monkeypatch):
    """The probe's timer every 50 ms costs an idle edge a wake-up each time: it slows to
    `idle_every` while the work count stands still, and is back at `every` as soon as
    it moves."""
    work = [0]
    waits: list[float] = []
    # The count at each of the probe's sleeps: moving, then standing, then moving again.
    script = iter([1, 2, 2, 2, 3, 4])

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        try:
            work[0] = next(script)
        except StopIteration:
            raise asyncio.CancelledError from None

    monkeypatch.setattr(stalls.asyncio, "sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await stalls.probe_loop_lag(lambda: work[0], every=0.05, idle_every=1.0)
    # The first sample has nothing to compare with, so it is taken at the idle pace.
    assert waits == [1.0, 0.05, 0.05, 1.0, 1.0, 0.05, 0.05]
