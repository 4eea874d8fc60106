"""What /readyz reports, and the loop that keeps it current."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from tickwire.registry.metrics import DEPENDENCY_UP
from tickwire.registry.errors import KAFKA_ERRORS, REDIS_ERRORS

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 3.0


class Health:
    """Ready means: Redis and Kafka answer, the consumer has joined its group, and the
    replica is not shutting down. The dependency flags are set by the probes below and,
    sooner, by any operation that fails or succeeds against that dependency."""

    def __init__(self) -> None:
        self.joined = False
        self.draining = False
        self._up = {"redis": False, "kafka": False}

    def mark(self, dependency: str, up: bool) -> None:
        if self._up[dependency] != up:
            log.info("%s %s", dependency, "available" if up else "unavailable")
        self._up[dependency] = up
        DEPENDENCY_UP.labels(dependency).set(int(up))

    def reason(self) -> str | None:
        """None when ready, else why not."""
        if self.draining:
            return "draining"
        if not self._up["redis"]:
            return "redis unavailable"
        if not self._up["kafka"]:
            return "kafka unavailable"
        if not self.joined:
            return "joining the consumer group"
        return None


async def watch(health: Health, redis: aioredis.Redis,
                consumer: Callable[[], AIOKafkaConsumer | None], interval: float) -> None:
    """Until cancelled: every `interval` seconds, ping Redis and ask Kafka for metadata
    through the consumer (until the consumer exists, connecting reports on Kafka)."""
    while True:
        health.mark("redis", await _answers(redis.ping, REDIS_ERRORS))
        if (client := consumer()) is not None:
            health.mark("kafka", await _answers(client.topics, KAFKA_ERRORS))
        await asyncio.sleep(interval)


async def _answers(probe: Callable[[], Awaitable[object]], errors: tuple) -> bool:
    try:
        await asyncio.wait_for(probe(), PROBE_TIMEOUT_SECONDS)
        return True
    except errors:
        return False
