"""The registry's lifetime: connect, run the loops, shut down in order.

The HTTP server answers from the first moment (/healthz 200, /readyz 503 with the
reason) while the runtime connects to Kafka in the background, retrying with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from tickwire.core import names
from tickwire.core.eventlog import ensure_tickwire_topics, event_consumer, event_producer
from tickwire.core.redisconn import redis_client
from tickwire.core.service import stop_tasks
from tickwire.core.settings import generated_id
from tickwire.registry import health as health_probe
from tickwire.registry.announcer import Announcer
from tickwire.registry.consumer import Membership, SubscriptionConsumer
from tickwire.registry.expiry import Expiry
from tickwire.registry.health import Health
from tickwire.registry.metrics import LOOP_RESTARTS
from tickwire.registry.retry import until_done
from tickwire.registry.settings import RegistrySettings
from tickwire.registry.state import RegistryState

log = logging.getLogger(__name__)

HEALTH_INTERVAL_SECONDS = 1.0
STOP_CONSUMING_SECONDS = 5.0
FINAL_PUBLISH_SECONDS = 3.0


def replica_id(settings: RegistrySettings) -> str:
    return settings.replica_id or generated_id()


class Runtime:
    def __init__(self, settings: RegistrySettings, health: Health):
        self.settings = settings
        self.health = health
        self.replica = replica_id(settings)
        # Every command times out, so a hung Redis (not just a dead one) is retried and
        # reported instead of blocking the registry.
        self.redis = redis_client(settings.redis_url, settings.redis_mode, socket_timeout=5)
        self.state = RegistryState(self.redis, settings.tombstone_seconds)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._announcer: Announcer | None = None
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._finishing = asyncio.Event()
        self._consuming: asyncio.Task | None = None
        self._announcing: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._spawn("health", lambda: health_probe.watch(self.health, self.redis,
                                                         lambda: self._consumer,
                                                         HEALTH_INTERVAL_SECONDS))
        self._spawn("connect", self._connect_and_run)

    async def _connect_and_run(self) -> None:
        settings = self.settings
        await until_done("kafka", "create topics", self.health, ensure_tickwire_topics, settings)
        if self._producer is None:
            self._producer = await until_done("kafka", "start producer", self.health,
                                              self._started_producer)
        if self._consumer is None:
            self._consumer = await until_done("kafka", "start consumer", self.health,
                                              self._started_consumer)
        self._announcer = Announcer(self.redis, self._producer, self.replica,
                                    settings.leader_ttl_seconds)
        consumer = SubscriptionConsumer(self._consumer, self.state, self.health, self._changed.set)
        expiry = Expiry(self.state, self.health, settings.lease_seconds,
                        lambda: self._consumer.partitions_for_topic(names.SUBSCRIPTIONS_TOPIC),
                        self._changed.set)
        self._consuming = self._spawn("consume", lambda: consumer.run(self._stopping))
        self._spawn("expire", lambda: expiry.run(settings.sweep_interval_seconds))
        self._announcing = self._spawn("announce",
                                       lambda: self._announcer.run(self._changed, self._finishing))
        log.info("registry %s consuming %s as group %s", self.replica, names.SUBSCRIPTIONS_TOPIC,
                 settings.group_id)

    async def _started_producer(self) -> AIOKafkaProducer:
        producer = event_producer(self.settings.kafka_bootstrap_servers, f"registry-{self.replica}")
        return await _started(producer)

    async def _started_consumer(self) -> AIOKafkaConsumer:
        consumer = event_consumer(self.settings.kafka_bootstrap_servers, self.settings.group_id,
                                  f"registry-{self.replica}")
        consumer.subscribe([names.SUBSCRIPTIONS_TOPIC], listener=Membership(self.health))
        return await _started(consumer)

    def _spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task:
        task = asyncio.create_task(_supervised(name, loop), name=name)
        self._tasks.append(task)
        return task

    async def stop(self) -> None:
        """Shut down in order, each step bounded in time."""
        # 1. Report not ready: probes see the replica leaving before its loops stop.
        self.health.draining = True
        # 2. Let the consume loop finish its batch: applied and committed, not re-applied.
        self._stopping.set()
        await _wait_briefly(self._consuming, STOP_CONSUMING_SECONDS)
        # 3. Publish what was applied while still the leader, so the next leader does not
        #    repeat it.
        self._finishing.set()
        self._changed.set()
        await _wait_briefly(self._announcing, FINAL_PUBLISH_SECONDS)
        # 4. Stop every other loop, then hand the leader lease over at once.
        await stop_tasks(self._tasks)
        if self._announcer is not None:
            await self._announcer.release()
        # 5. Leave the group (its partitions move to the other replicas now, not after the
        #    session timeout), flush the producer, close Redis.
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        await self.redis.aclose()


async def _wait_briefly(task: asyncio.Task | None, seconds: float) -> None:
    """Give `task` up to `seconds` to end by itself; it is cancelled later if it did not."""
    if task is not None:
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), seconds)


async def _started(client: AIOKafkaConsumer | AIOKafkaProducer):
    """Start a Kafka client; a failed start is closed before the caller retries."""
    try:
        await client.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await client.stop()
        raise
    return client


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run `loop` until it returns or is cancelled. An unexpected exception is logged,
    counted and the loop restarted after a backoff: one bug must not silently stop the
    registry from consuming."""

    def restarting(state: RetryCallState) -> None:
        LOOP_RESTARTS.labels(name).inc()
        log.error("%s loop crashed; restarting", name, exc_info=state.outcome.exception())

    async for attempt in AsyncRetrying(retry=retry_if_exception_type(Exception),
                                       wait=wait_random_exponential(multiplier=0.5, max=30),
                                       before_sleep=restarting):
        with attempt:
            await loop()
