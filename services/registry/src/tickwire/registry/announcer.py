"""Publishes the registry's outbox to `market-data.active-symbols`, in order.

Guarantees:
- One replica at a time holds the leader lease and publishes, so the announcements of
  a symbol are sent in the order its transitions happened (all go to one partition).
- An entry leaves the outbox only after Kafka acknowledged it, and only while this
  replica still holds the lease (checked atomically with the removal): an outage or a
  crash delays or repeats announcements, it never drops one.
- Without a crash or a change of leader in the middle of a batch, each change of
  activity is published exactly once. A repeat carries a state that consumers already
  have (the topic is compacted; ingestors treat a repeated state as a no-op).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tickwire.core import names
from tickwire.core.telemetry import (FLOW, SUBSCRIPTION, TRACEPARENT, context_from_traceparent,
                                     kafka_attributes, kafka_headers)
from tickwire.registry.metrics import ANNOUNCEMENTS, LEADER, OUTBOX
from tickwire.registry.errors import KAFKA_ERRORS, REDIS_ERRORS
from tickwire.registry.retry import forever

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("tickwire.registry")

# KEYS: leader. ARGV: replica, ttl_ms. Renews the lease if held, else takes it if free.
_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""

# KEYS: leader, outbox. ARGV: replica, n. Drops the first n entries if still the leader.
_TRIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
return 1
"""

# KEYS: leader. ARGV: replica.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

BATCH = 200
# How often the leader looks at the outbox when no local change woke it: changes
# applied by other replicas land there too.
POLL_SECONDS = 0.25


def acknowledged_prefix(results: Sequence[object]) -> int:
    """How many leading sends succeeded: those entries may leave the outbox."""
    for count, result in enumerate(results):
        if isinstance(result, BaseException):
            return count
    return len(results)


class Announcer:
    def __init__(self, redis: aioredis.Redis, producer: AIOKafkaProducer, replica_id: str,
                 leader_ttl_seconds: float):
        self._redis = redis
        self._producer = producer
        self._replica_id = replica_id
        self._ttl_ms = int(leader_ttl_seconds * 1000)
        self._claim = redis.register_script(_CLAIM)
        self._trim = redis.register_script(_TRIM)
        self._release = redis.register_script(_RELEASE)
        self.is_leader = False

    async def run(self, wake: asyncio.Event, finishing: asyncio.Event) -> None:
        """Hold or wait for the leader lease; while held, publish the outbox whenever
        `wake` is set and every POLL_SECONDS otherwise. Once `finishing` is set, make one
        last pass and return (at shutdown, so nothing this replica applied is left for
        the next leader to repeat)."""
        retrying = forever("announce", REDIS_ERRORS + KAFKA_ERRORS, self._lost_lease)
        while True:
            wake.clear()
            last = finishing.is_set()
            await retrying(self.publish_pending)
            if last:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_SECONDS)

    async def publish_pending(self) -> int:
        """If this replica is (or becomes) the leader, publish the whole outbox; returns
        how many entries were published."""
        self._set_leader(bool(await self._claim(keys=[names.REGISTRY_LEADER_KEY],
                                                args=[self._replica_id, self._ttl_ms])))
        published = 0
        while self.is_leader:
            sent = await self._publish_batch()
            published += sent
            if sent < BATCH:
                break
        return published

    async def _publish_batch(self) -> int:
        entries = await self._redis.lrange(names.REGISTRY_OUTBOX_KEY, 0, BATCH - 1)
        OUTBOX.set(await self._redis.llen(names.REGISTRY_OUTBOX_KEY))
        if not entries:
            return 0
        deliveries = []
        try:
            for entry in entries:
                deliveries.append(await self._send(entry))
        finally:
            # Whatever was handed to the producer is awaited, so an entry Kafka took is
            # removed even when a later send failed.
            results = await asyncio.gather(*deliveries, return_exceptions=True)
            done = acknowledged_prefix(results)
            if done:
                await self._remove(done)
        if done < len(entries):
            raise next(r for r in results if isinstance(r, BaseException))
        return done

    async def _send(self, entry: bytes) -> asyncio.Future:
        """Hand one outbox entry to the producer. An entry's `traceparent` (the context of
        the subscription event that caused it) moves from the JSON into the record's
        headers, so the value is exactly the contract's `{v,symbol,active,subscribers,ts}`."""
        body = orjson.loads(entry)
        cause = body.pop(TRACEPARENT, None)
        value = orjson.dumps(body) if cause is not None else bytes(entry)
        with TRACER.start_as_current_span(
                f"{names.ACTIVE_SYMBOLS_TOPIC} publish", kind=SpanKind.PRODUCER,
                context=context_from_traceparent(cause),
                attributes=kafka_attributes(names.ACTIVE_SYMBOLS_TOPIC, **{
                    FLOW: SUBSCRIPTION, "tickwire.symbol": body["symbol"],
                    "tickwire.active": bool(body.get("active"))})):
            return await self._producer.send(names.ACTIVE_SYMBOLS_TOPIC,
                                             key=body["symbol"].encode(), value=value,
                                             headers=kafka_headers())

    async def _remove(self, count: int) -> None:
        if await self._trim(keys=[names.REGISTRY_LEADER_KEY, names.REGISTRY_OUTBOX_KEY],
                            args=[self._replica_id, count]):
            ANNOUNCEMENTS.inc(count)
        else:
            # Lost the lease mid-batch: the new leader publishes these entries again.
            self._set_leader(False)
            log.warning("leader lease lost while publishing; %d entries will be repeated", count)

    async def release(self) -> None:
        """Give up the leader lease (at shutdown) so another replica takes over at once."""
        with contextlib.suppress(*REDIS_ERRORS):
            await self._release(keys=[names.REGISTRY_LEADER_KEY], args=[self._replica_id])
        self._set_leader(False)

    def _lost_lease(self, _: BaseException) -> None:
        self._set_leader(False)

    def _set_leader(self, leader: bool) -> None:
        if leader != self.is_leader:
            log.info("%s the announcer leader lease", "holding" if leader else "not holding")
        self.is_leader = leader
        LEADER.set(int(leader))
