"""How the registry waits for Redis and Kafka: exponential backoff with full jitter.

Waits on the event path never give up: an event's offset is committed only after its
Redis write succeeded, so giving up would lose it. While a wait lasts the dependency is
marked down (so /readyz says 503); shutdown cancels it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from tickwire.registry.errors import KAFKA_ERRORS, REDIS_ERRORS
from tickwire.registry.metrics import RETRIES

if TYPE_CHECKING:
    from tickwire.registry.health import Health

log = logging.getLogger(__name__)


# From 0.1 s up to 5 s between attempts, each a random fraction of that (full jitter),
# so replicas waiting on the same outage do not retry in lockstep.
BACKOFF = wait_random_exponential(multiplier=0.1, max=5)

T = TypeVar("T")


def describe(error: BaseException | None) -> str:
    """`ConnectionError: Error 111 connecting to ...` (some clients' reprs drop the message)."""
    return f"{type(error).__name__}: {error}"


def forever(operation: str, errors: tuple[type[BaseException], ...],
            on_wait: Callable[[BaseException], None] | None = None) -> AsyncRetrying:
    """A retry policy for `operation`: on `errors`, wait (BACKOFF) and try again, without
    limit; any other exception propagates at once."""

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception()
        RETRIES.labels(operation).inc()
        log.warning("%s failed (attempt %d); retrying: %s", operation, state.attempt_number,
                    describe(error))
        if on_wait is not None:
            on_wait(error)

    return AsyncRetrying(retry=retry_if_exception_type(errors), wait=BACKOFF,
                         before_sleep=waiting, reraise=True)


async def until_done(dependency: str, operation: str, health: Health,
                     call: Callable[..., Awaitable[T]], *args: object) -> T:
    """`await call(*args)`, retried while `dependency` ("redis" or "kafka") is unavailable,
    which is reported to `health` for as long as it lasts."""
    errors = REDIS_ERRORS if dependency == "redis" else KAFKA_ERRORS
    result = await forever(operation, errors, lambda _: health.mark(dependency, False))(call, *args)
    health.mark(dependency, True)
    return result
