"""StallTracer: a stalled event loop gets one log line with the stack it is stuck in."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

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
