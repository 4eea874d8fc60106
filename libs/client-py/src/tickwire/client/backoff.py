"""Reconnect delays: exponential 1, 2, 4, 8, 16, then 30 (max), scaled, with full jitter.

Full jitter (a uniform draw between 0 and the step) spreads a crowd of clients that lost
the same edge at the same moment, so their retries do not arrive as one wave.
"""

from __future__ import annotations

import random
from collections.abc import Callable

STEPS = (1, 2, 4, 8, 16)
MAX_STEP = 30


def backoff_step(attempt: int) -> int:
    """The un-jittered delay, in units of the reconnect interval, before `attempt` (1-based)."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    return STEPS[attempt - 1] if attempt <= len(STEPS) else MAX_STEP


def backoff_delay(attempt: int, interval: float,
                  uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before `attempt`: uniform in [0, step × interval]."""
    return uniform(0.0, backoff_step(attempt) * interval)
