"""A Redis outage: the registry reports not ready, waits, and then applies every event.

The registry gets a Redis of its own here, which the test kills and restarts.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from tickwire.localstack import free_port, start_redis

from integration.test_registry import (LONG_LEASE, EventFeed, announcements, metrics, read_sets,
                                       settled, toggles)
from integration.wsclient import eventually, get_json


async def readiness(url: str) -> tuple[int, dict]:
    status, body, _ = await get_json(f"{url}/readyz")
    return status, body


async def test_a_redis_outage_makes_the_registry_unready_and_loses_no_event(
        stack, kafka_bootstrap, tmp_path):
    port, workdir = free_port(), tmp_path / "registry-redis"
    redis_url = f"redis://127.0.0.1:{port}/0"
    redis_server = start_redis(port, workdir)
    registry = None
    try:
        registry = stack.registry(TICKWIRE_REDIS_URL=redis_url,
                                  TICKWIRE_REGISTRY_LEASE_SECONDS=LONG_LEASE)
        steps = list(toggles(seed=4, edges=5, symbols=8, count=600))
        async with EventFeed(kafka_bootstrap) as feed:
            await feed.play(steps[:300], per_second=300)
            await settled(kafka_bootstrap, redis_url)
            assert await read_sets(redis_url) == feed.model.expected()

            # The data survives the outage (saved to disk); only the service goes away.
            client = aioredis.Redis.from_url(redis_url)
            await client.save()
            await client.aclose()
            redis_server.kill()
            await eventually(lambda: _is(readiness(registry.url),
                                         (503, {"status": "not_ready",
                                                "reason": "redis unavailable"})))
            assert (await get_json(f"{registry.url}/healthz"))[0] == 200
            status, body, _ = await get_json(f"{registry.url}/api/symbols")
            assert status == 503 and body["error"]["code"] == "UNAVAILABLE"

            # Events sent while Redis is down are read, and their writes wait and retry.
            await feed.play(steps[300:], per_second=300)
            await eventually(lambda: _apply_retried(registry.url))
            assert (await readiness(registry.url))[0] == 503

            redis_server = await asyncio.to_thread(start_redis, port, workdir)
            await eventually(lambda: _is(readiness(registry.url), (200, {"status": "ready"})))

        await settled(kafka_bootstrap, redis_url)
        assert await read_sets(redis_url) == feed.model.expected()
        assert await announcements(kafka_bootstrap) == feed.model.activity_changes()
    finally:
        if registry is not None:
            await asyncio.to_thread(registry.process.stop)
        redis_server.stop()


async def _apply_retried(url: str) -> bool:
    return (await metrics(url)).get('tickwire_registry_retries_total{operation="apply"}', 0) > 0


async def _is(value, expected) -> bool:
    return await value == expected
