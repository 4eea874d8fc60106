"""The failures of each dependency that are worth retrying (an outage, not a bug)."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError

from tickwire.core.eventlog import KafkaError

REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
KAFKA_ERRORS = (KafkaError, OSError, asyncio.TimeoutError)
