"""Snapshots of held symbols come from the edge's own copy of their newest tick
(edge/snapshots.py `LatestTicks`), against a real edge and Redis: Redis is read once per
symbol and hold, a later subscriber gets the newest tick all the same, and ticks the edge
may have missed while its subscriber connection was down are read from Redis again."""

from __future__ import annotations

import redis.asyncio as aioredis

from integration.wsclient import WsClient, eventually, subscribed

SYMBOL = "SNAPA"


async def _mget_calls(redis: aioredis.Redis) -> int:
    return (await redis.info("commandstats")).get("cmdstat_mget", {}).get("calls", 0)


async def _snapshot(client: WsClient, symbol: str) -> dict:
    found = [u for u in await client.updates(symbol, 1) if u.get("snapshot")]
    assert found, f"the first update of {symbol} was not its snapshot"
    return found[0]


async def test_a_later_subscriber_gets_the_newest_tick_without_a_redis_read(stack, injector):
    edge = stack.edge("edge-snap1")
    await injector.publish(SYMBOL, 1)
    first = await subscribed(edge.ws_url, [SYMBOL])
    try:
        assert (await _snapshot(first, SYMBOL))["seq"] == 1
        for seq in range(2, 6):
            await injector.publish(SYMBOL, seq)
        assert [u["seq"] for u in await first.updates(SYMBOL, 4)] == [2, 3, 4, 5]
        reads = await _mget_calls(injector.redis)
        second = await subscribed(edge.ws_url, [SYMBOL])
        try:
            snapshot = await _snapshot(second, SYMBOL)
            assert (snapshot["seq"], snapshot["epoch"]) == (5, "e1")
            assert await _mget_calls(injector.redis) == reads
        finally:
            await second.close()
    finally:
        await first.close()


async def test_after_the_subscriber_connection_drops_the_snapshot_is_read_again(
        stack, injector):
    edge = stack.edge("edge-snap2")
    await injector.publish(SYMBOL, 1)
    first = await subscribed(edge.ws_url, [SYMBOL])
    try:
        assert (await _snapshot(first, SYMBOL))["seq"] == 1
        # The edge's Pub/Sub connection dropped; a tick published right away is likely
        # missed by it while it reconnects. Either way the next snapshot is seq 2.
        await injector.redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await injector.publish(SYMBOL, 2)
        await eventually(lambda: _subscribers_are(injector, SYMBOL, 1), timeout=20)
        second = await subscribed(edge.ws_url, [SYMBOL])
        try:
            assert (await _snapshot(second, SYMBOL))["seq"] == 2
        finally:
            await second.close()
    finally:
        await first.close()


async def _subscribers_are(injector, symbol: str, count: int) -> bool:
    return await injector.subscribers(symbol) == count
