"""The one retry-delay schedule of tickwire's reconnect loops: exponential, capped, jittered.

Loops that retry through tenacity (start-up checks, the registry's waits, provider calls)
use its `wait_random_exponential`, the same shape; this serves the hand-written loops that
must keep a connection (Pub/Sub readers, provider streams, worker restarts).

Pure arithmetic: no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(attempt: int, first: float, cap: float, jitter: str = "equal",
                  uniform: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before retry `attempt` (0-based): `first` doubling up to `cap`.

    jitter "full" draws from [0, step] (spreads a crowd the most), "equal" from
    [step/2, step] (never retries at once), "none" waits exactly the step.
    """
    step = min(cap, first * 2 ** min(attempt, 32))
    if jitter == "full":
        return uniform(0.0, step)
    if jitter == "equal":
        return step * uniform(0.5, 1.0)
    return step
