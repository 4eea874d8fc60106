"""The Kafka event log: topic creation, an idempotent producer, consumers.

Subscription events are at-least-once: producers are idempotent (`acks=all`) and retry,
consumers commit an offset only after its side effect is done.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from tickwire.core import names
from tickwire.core.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


def tickwire_topics(subscriptions_partitions: int, active_partitions: int) -> list[TopicSpec]:
    return [
        TopicSpec(names.SUBSCRIPTIONS_TOPIC, subscriptions_partitions),
        TopicSpec(names.ACTIVE_SYMBOLS_TOPIC, active_partitions, compacted=True),
    ]


async def ensure_tickwire_topics(settings: ServiceSettings) -> None:
    """Every service's start: tickwire's topics as its settings describe them."""
    await ensure_topics(settings.kafka_bootstrap_servers,
                        tickwire_topics(settings.subscriptions_partitions,
                                        settings.active_symbols_partitions),
                        settings.kafka_replication_factor, settings.kafka_min_insync_replicas)


async def ensure_topics(bootstrap_servers: str, specs: list[TopicSpec],
                        replication_factor: int = 1, min_insync_replicas: int = 1) -> None:
    """Create the topics that are missing (several services may race to do it), each with
    `replication_factor` copies of which `min_insync_replicas` must take a write: with 3
    and 2, a broker may fail without losing or refusing an event."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs=_topic_configs(spec, min_insync_replicas),
            )
            for spec in specs if spec.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
                log.info("created kafka topics", extra={"topics": [t.name for t in missing]})
            except TopicAlreadyExistsError:
                pass
            await _wait_for_metadata(admin, {t.name for t in missing})
    finally:
        await admin.close()


def _topic_configs(spec: TopicSpec, min_insync_replicas: int) -> dict[str, str]:
    configs = {"min.insync.replicas": str(min_insync_replicas)}
    if spec.compacted:
        configs["cleanup.policy"] = "compact"
    return configs


async def _wait_for_metadata(admin: AIOKafkaAdminClient, topics: set[str]) -> None:
    for _ in range(50):
        if topics <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.1)


def event_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """Idempotent, acks=all: a retried send never duplicates or reorders within a partition."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )


def event_consumer(bootstrap_servers: str, group_id: str, client_id: str,
                   **options) -> AIOKafkaConsumer:
    """A group member with manual commits, reading from the start of unread partitions.
    The caller subscribes it (with its rebalance listener, if any)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        **options,
    )


async def kafka_reachable(bootstrap_servers: str) -> None:
    """Raise KafkaError/OSError unless the cluster answers a metadata request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
    finally:
        await admin.close()


__all__ = ["KafkaError", "TopicSpec", "ensure_tickwire_topics", "ensure_topics",
           "event_consumer", "event_producer", "kafka_reachable", "tickwire_topics"]
