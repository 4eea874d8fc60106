"""The publisher's own connection to a standalone Redis (`tickwire.core.scripts`), against
real Redis: a batch's ticks come back per quote, a flushed script is loaded again, and a
Redis that goes away costs only the quotes of the batches it failed, each as an exception,
until the connection is made again.

The drop tests run on a Redis of their own, which they kill and start again."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from tickwire.core.redisconn import redis_client
from tickwire.core.scripts import ScriptBatches
from tickwire.ingestor.publisher import TickPublisher

from integration.faults import DedicatedRedis
from integration.test_ingestor_publish import T0, cached, quote
from integration.wsclient import eventually


@pytest.fixture
async def redis(redis_url: str):
    client = redis_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def publisher(redis):
    publisher = TickPublisher(redis)
    yield publisher
    await publisher.aclose()


async def test_a_batch_comes_back_per_quote_in_order(redis, publisher):
    symbols = [f"PC{i}" for i in range(200)]
    ticks = await publisher.publish_batch([quote(s, 10.0 + i, T0) for i, s in enumerate(symbols)])
    assert [(t.symbol, t.seq, t.data["price"]) for t in ticks] == [
        (s, 1, 10.0 + i) for i, s in enumerate(symbols)]
    assert len({t.epoch for t in ticks}) == 1  # one candidate epoch per batch
    assert (await cached(redis, "PC199")).data["price"] == 209.0


async def test_concurrent_batches_share_the_connection(redis, publisher):
    batches = [[quote(f"CC{n}-{i}", 1.0 + i, T0) for i in range(20)] for n in range(10)]
    results = await asyncio.gather(*(publisher.publish_batch(b) for b in batches))
    for batch, ticks in zip(batches, results):
        assert [(t.symbol, t.seq) for t in ticks] == [(q.symbol, 1) for q in batch]


async def test_a_flushed_script_is_loaded_again(redis, publisher):
    first = await publisher.publish(quote("NS", 1.0, T0))
    await redis.script_flush()
    assert await redis.script_exists(publisher._scripts.sha) == [False]
    ticks = await publisher.publish_batch([quote("NS", 2.0, T0), quote("NS2", 3.0, T0)])
    assert [(t.symbol, t.seq) for t in ticks] == [("NS", 2), ("NS2", 1)]
    assert ticks[0].epoch == first.epoch
    assert await redis.script_exists(publisher._scripts.sha) == [True]


async def test_a_script_error_comes_back_for_its_call_only(redis):
    scripts = ScriptBatches(redis, "if ARGV[1] == 'bad' then return redis.error_reply('ERR no') "
                                   "end return ARGV[1]")
    try:
        replies = await scripts.run([([], ["a"]), ([], ["bad"]), ([], [7])])
    finally:
        await scripts.aclose()
    assert replies[0] == b"a" and replies[2] == b"7"
    assert isinstance(replies[1], ResponseError) and "no" in str(replies[1])


async def test_a_connection_killed_by_redis_is_made_again(redis, publisher):
    assert await publisher.publish(quote("CK", 1.0, T0)) is not None
    await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    # The next batch finds the connection gone (its quotes come back as exceptions) or
    # already reopened; either way a later one is published, continuing the sequence.
    price = 2.0
    async with asyncio.timeout(15):
        while True:
            outcome = (await publisher.publish_batch([quote("CK", price, T0)]))[0]
            if not isinstance(outcome, Exception):
                break
            assert isinstance(outcome, RedisConnectionError)
            price += 1
    assert outcome.seq == 2


@pytest.fixture
async def own_redis(tmp_path):
    server = await asyncio.to_thread(DedicatedRedis, tmp_path / "redis")
    yield server
    await asyncio.to_thread(server.stop)


async def test_redis_down_fails_each_quote_and_redis_back_publishes_again(own_redis):
    client = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=3)
    publisher = TickPublisher(client)
    try:
        before = await publisher.publish_batch([quote("RD1", 1.0, T0), quote("RD2", 1.0, T0)])
        assert [t.seq for t in before] == [1, 1]

        await asyncio.to_thread(own_redis.kill)
        down = await publisher.publish_batch([quote("RD1", 2.0, T0), quote("RD2", 2.0, T0)])
        assert len(down) == 2 and all(isinstance(o, RedisError) for o in down)
        with pytest.raises(RedisError):
            await publisher.publish(quote("RD1", 3.0, T0))

        await asyncio.to_thread(own_redis.start)
        # Back empty (no persistence): the script is loaded again and each sequence
        # restarts at 1 in a new epoch.
        after = await publisher.publish_batch([quote("RD1", 4.0, T0), quote("RD2", 4.0, T0)])
        assert [(t.symbol, t.seq) for t in after] == [("RD1", 1), ("RD2", 1)]
        assert after[0].epoch != before[0].epoch
    finally:
        await publisher.aclose()
        await client.aclose()


async def test_a_batch_in_flight_when_redis_dies_fails_each_unanswered_quote(own_redis):
    client = aioredis.Redis.from_url(own_redis.url)
    admin = aioredis.Redis.from_url(own_redis.url)
    publisher = TickPublisher(client)
    try:
        assert await publisher.publish(quote("IF", 1.0, T0)) is not None
        # Writes wait while Redis is paused: the batch is sent and stays unanswered.
        await admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        in_flight = asyncio.create_task(publisher.publish_batch(
            [quote(f"IF{i}", 1.0, T0) for i in range(5)]))
        await eventually(lambda: _paused_script(admin), timeout=15)
        assert not in_flight.done()
        await asyncio.to_thread(own_redis.kill)
        outcomes = await asyncio.wait_for(in_flight, 15)
        assert len(outcomes) == 5 and all(isinstance(o, RedisConnectionError) for o in outcomes)
    finally:
        await publisher.aclose()
        await client.aclose()
        await admin.aclose()


async def _paused_script(admin: aioredis.Redis) -> bool:
    """Whether a client's EVALSHA waits in Redis, postponed by CLIENT PAUSE (flag b)."""
    for client in await admin.client_list():
        if client.get("cmd") == "evalsha" and "b" in client.get("flags", ""):
            return True
    return False
