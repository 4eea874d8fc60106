"""The registry survives restarts, rebuilds from the topic, and scales out, exactly.

The edges here are simulated (`EventFeed`): they send no heartbeats, so nothing heals a
lost event behind the registry's back, and the lease is long so nothing expires.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from integration.test_registry import (LONG_LEASE, EventFeed, announcements, history, metrics,
                                       only_changes, read_sets, settled, subscribed, toggles)
from integration.wsclient import eventually


def other_database(redis_url: str, db: int) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{db}"


async def flush(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
async def test_a_registry_restarted_mid_stream_loses_nothing_and_doubles_nothing(
        stack, redis_url, kafka_bootstrap, stop):
    registry = stack.registry(TICKWIRE_REGISTRY_LEASE_SECONDS=LONG_LEASE)
    async with EventFeed(kafka_bootstrap) as feed:
        stream = asyncio.create_task(
            feed.play(toggles(seed=1, edges=8, symbols=12, count=1500), per_second=100))
        await eventually(lambda: _at_least(feed, 400))
        if stop == "sigterm":
            await asyncio.to_thread(registry.process.stop)
        else:
            await asyncio.to_thread(registry.process.kill)
        assert not stream.done()
        await asyncio.to_thread(stack.registry, "registry-restarted",
                                TICKWIRE_REGISTRY_LEASE_SECONDS=LONG_LEASE)
        await stream

    await settled(kafka_bootstrap, redis_url)
    assert await read_sets(redis_url) == feed.model.expected()
    published, expected = await announcements(kafka_bootstrap), feed.model.activity_changes()
    if stop == "sigterm":
        assert published == expected
    else:
        # A crash between Kafka's acknowledgement and the outbox trim repeats a state.
        assert only_changes(published) == expected


async def test_replaying_the_topic_into_an_empty_redis_gives_the_same_state(
        stack, redis_url, kafka_bootstrap):
    registry = stack.registry(TICKWIRE_REGISTRY_LEASE_SECONDS=LONG_LEASE)
    # A real edge too, killed so that its symbols stay (the lease is long).
    edge = stack.edge("edge-1")
    client = await subscribed(edge.ws_url, ["AAPL", "SYM1"])
    async with EventFeed(kafka_bootstrap, seed=2) as feed:
        await feed.play(history(seed=2, edges=6, symbols=10, count=800), per_second=400)
    edge.process.kill()
    await client.close()
    await settled(kafka_bootstrap, redis_url)
    before = await read_sets(redis_url)
    assert {"AAPL", "SYM1"} <= before.holdings["edge-1"]
    simulated = feed.model.expected()
    assert {e: s for e, s in before.holdings.items() if e != "edge-1"} == simulated.holdings

    await asyncio.to_thread(registry.process.stop)
    await flush(redis_url)
    stack.registry("registry-replay", TICKWIRE_REGISTRY_GROUP_ID="registry-replay",
                   TICKWIRE_REGISTRY_LEASE_SECONDS=LONG_LEASE)
    await settled(kafka_bootstrap, redis_url, group="registry-replay")
    assert await read_sets(redis_url) == before


async def test_two_registry_replicas_give_the_same_state_as_one(stack, redis_url, kafka_bootstrap):
    replicas = [stack.registry(f"registry-{n}", TICKWIRE_REGISTRY_LEASE_SECONDS=LONG_LEASE)
                for n in (1, 2)]
    async with EventFeed(kafka_bootstrap, seed=3) as feed:
        await feed.play(history(seed=3, edges=8, symbols=12, count=1200), per_second=400)
    await settled(kafka_bootstrap, redis_url)
    together = await read_sets(redis_url)
    assert together == feed.model.expected()
    for replica in replicas:       # the group split the partitions: both did part of the work
        samples = await metrics(replica.url)
        assert sum(v for k, v in samples.items()
                   if k.startswith("tickwire_registry_events_total{")) > 0, replica.process.name
    # One leader published: every symbol's announcements are changes only, and end in its state.
    for symbol, states in (await announcements(kafka_bootstrap)).items():
        assert states[0] is True and all(a != b for a, b in zip(states, states[1:])), symbol
        assert states[-1] == (symbol in together.active), symbol

    for replica in replicas:
        await asyncio.to_thread(replica.process.stop)
    alone_db = other_database(redis_url, 1)
    await flush(alone_db)
    stack.registry("registry-alone", TICKWIRE_REDIS_URL=alone_db,
                   TICKWIRE_REGISTRY_GROUP_ID="registry-alone",
                   TICKWIRE_REGISTRY_LEASE_SECONDS=LONG_LEASE)
    await settled(kafka_bootstrap, alone_db, group="registry-alone")
    assert await read_sets(alone_db) == together
    await flush(alone_db)


async def _at_least(feed: EventFeed, count: int) -> bool:
    return feed.sent >= count
