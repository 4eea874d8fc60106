"""The registry's loops: apply subscription events, expire edges whose lease ran out."""

from __future__ import annotations

import asyncio
import logging
import random

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError
from prometheus_client import Counter
from redis.exceptions import RedisError

from tickwire.core.eventlog import KafkaError
from tickwire.core.events import EventError, SubscriptionEvent
from tickwire.registry.state import RegistryState

log = logging.getLogger(__name__)

EVENTS = Counter("tickwire_registry_events_total", "Subscription events applied", ["type"])
INVALID_EVENTS = Counter("tickwire_registry_invalid_events_total", "Records that were not events")
ACTIVITY_CHANGES = Counter("tickwire_registry_activity_changes_total",
                           "Symbols that became active or inactive")
EDGES_EXPIRED = Counter("tickwire_registry_edges_expired_total", "Edges removed by lease expiry")


class Health:
    """What /readyz reports: the last outcome of talking to each dependency."""

    def __init__(self) -> None:
        self.redis_ok = True
        self.kafka_ok = False


async def _until_redis_succeeds(health: Health, operation):
    """Retry a Redis operation with backoff and jitter until it succeeds: the event it
    belongs to is committed only afterwards, so nothing is lost while Redis is down."""
    attempt = 0
    while True:
        try:
            result = await operation()
            health.redis_ok = True
            return result
        except (RedisError, OSError) as exc:
            health.redis_ok = False
            delay = min(5.0, 0.1 * 2 ** attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            log.warning("redis unavailable; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(delay)


async def consume_subscriptions(consumer: AIOKafkaConsumer, state: RegistryState,
                                health: Health, announce: asyncio.Event) -> None:
    """At-least-once: a partition's offset is committed after its events are in Redis."""
    while True:
        try:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            health.kafka_ok = True
        except KafkaError as exc:
            health.kafka_ok = False
            log.warning("kafka consume failed; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(1)
            continue
        for partition, records in batches.items():
            for record in records:
                try:
                    event = SubscriptionEvent.decode(record.value)
                except EventError as exc:
                    INVALID_EVENTS.inc()
                    log.warning("skipping invalid subscription record",
                                extra={"error": str(exc), "offset": record.offset})
                    continue
                changed = await _until_redis_succeeds(health, lambda e=event: state.apply(e))
                EVENTS.labels(str(event.type)).inc()
                if changed:
                    ACTIVITY_CHANGES.inc(changed)
                    announce.set()
            try:
                await consumer.commit({partition: records[-1].offset + 1})
            except (CommitFailedError, KafkaError) as exc:
                # The partition moved to another replica, which re-applies these events:
                # harmless, every transition is idempotent.
                log.warning("commit failed", extra={"error": repr(exc)})


async def expire_edges(state: RegistryState, health: Health, announce: asyncio.Event,
                       interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            for edge in await state.edges_without_lease():
                changed = await state.expire(edge)
                EDGES_EXPIRED.inc()
                log.info("edge lease expired", extra={"edge": edge, "symbols_deactivated": changed})
                if changed:
                    ACTIVITY_CHANGES.inc(changed)
                    announce.set()
            health.redis_ok = True
        except (RedisError, OSError) as exc:
            health.redis_ok = False
            log.warning("edge expiry sweep failed", extra={"error": repr(exc)})
