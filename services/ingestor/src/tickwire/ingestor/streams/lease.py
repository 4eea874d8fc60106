"""The one upstream connection a provider key allows, held by one replica at a time.

Providers count connections per key, whatever the number of ingestor replicas, so a
replica opens a key's connection only while it holds the key's lease in Redis (a string
naming the holder, with a TTL it renews). A replica that dies or loses Redis loses the
lease when the TTL runs out, and closes its connection by then (see connection.py), so
two connections of one key never overlap for longer than a TTL — and never while both
replicas can reach Redis.
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from tickwire.core import names

# Take the lease if free, or extend it if ours; 1 when held.
_HOLD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class ConnectionLease:
    def __init__(self, redis: aioredis.Redis, provider: str, secret: str, holder: str,
                 ttl_seconds: float):
        self.key = names.stream_lease_key(provider, key_digest(secret))
        self.holder = holder
        self.ttl_seconds = ttl_seconds
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    async def hold(self) -> bool:
        """Take or renew the lease; raises RedisError/OSError when Redis cannot answer."""
        return bool(await self._hold(keys=[self.key],
                                     args=[self.holder, int(self.ttl_seconds * 1000)]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.holder])
