"""Publishes the registry's outbox to `market-data.active-symbols`, in order.

One registry replica at a time holds the leader lease and publishes, so announcements
of one symbol never overtake each other. An entry leaves the outbox only after Kafka
acknowledged it: a crash in between re-sends it (at-least-once; the compacted topic and
the ingestors treat a repeated state as a no-op).
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.eventlog import KafkaError

log = logging.getLogger(__name__)

_RENEW_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""

BATCH = 200


class Announcer:
    def __init__(self, redis: aioredis.Redis, producer: AIOKafkaProducer, replica_id: str,
                 leader_ttl_seconds: float):
        self._redis = redis
        self._producer = producer
        self._replica_id = replica_id
        self._ttl_ms = int(leader_ttl_seconds * 1000)
        self._claim = redis.register_script(_RENEW_IF_OWNER)
        self.is_leader = False
        self.announced = 0

    async def run(self, wake: asyncio.Event) -> None:
        """Until cancelled: hold or wait for the leader lease, publish the outbox."""
        while True:
            try:
                self.is_leader = bool(await self._claim(
                    keys=[names.REGISTRY_LEADER_KEY], args=[self._replica_id, self._ttl_ms]))
                if self.is_leader:
                    while await self._publish_batch():
                        pass
            except (RedisError, OSError, KafkaError) as exc:
                log.warning("announcer cannot publish; retrying", extra={"error": repr(exc)})
                self.is_leader = False
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), timeout=self._ttl_ms / 3000)
            except asyncio.TimeoutError:
                pass

    async def _publish_batch(self) -> bool:
        entries = await self._redis.lrange(names.REGISTRY_OUTBOX_KEY, 0, BATCH - 1)
        if not entries:
            return False
        sends = []
        for entry in entries:
            symbol = orjson.loads(entry)["symbol"]
            sends.append(await self._producer.send(
                names.ACTIVE_SYMBOLS_TOPIC, key=symbol.encode(), value=bytes(entry)))
        await asyncio.gather(*sends)
        await self._redis.ltrim(names.REGISTRY_OUTBOX_KEY, len(entries), -1)
        self.announced += len(entries)
        return len(entries) == BATCH

    async def release(self) -> None:
        """Give up the leader lease at shutdown so another replica takes over at once."""
        if self.is_leader:
            try:
                owner = await self._redis.get(names.REGISTRY_LEADER_KEY)
                if owner and owner.decode() == self._replica_id:
                    await self._redis.delete(names.REGISTRY_LEADER_KEY)
            except (RedisError, OSError):
                pass
