"""tickwire on a real local Redis Cluster (6 nodes: 3 primaries, 3 replicas), started once
for this module: the atomic publish, the registry's transitions through a resharding, and
the whole stack through a primary's failover."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from tickwire.core import names
from tickwire.core.events import SubscriptionEvent
from tickwire.core.redisconn import redis_client
from tickwire.localstack import ServiceLauncher
from tickwire.localstack.cluster import LocalRedisCluster, start_redis_cluster
from tickwire.localstack.ports import free_node_ports
from tickwire.registry.state import RegistryState

from integration import test_ingestor_publish as publish
from integration.stack import Stack
from integration.test_registry import Model, history, read_sets
from integration.test_registry_state import build, delivery_order
from integration.wsclient import WsClient, eventually


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory) -> LocalRedisCluster:
    cluster = start_redis_cluster(free_node_ports(6), tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
async def cluster_redis(redis_cluster: LocalRedisCluster):
    """A cluster client on an emptied cluster whose every slot is served."""
    await eventually(lambda: asyncio.to_thread(redis_cluster.healthy), timeout=30)
    client = redis_client(redis_cluster.url, "cluster")
    await client.flushall()
    yield client
    await client.aclose()


async def test_an_older_quote_never_replaces_a_newer_one(cluster_redis):
    await publish.check_an_older_quote_never_replaces_a_newer_one(cluster_redis)


async def test_racing_replicas_keep_cache_and_channel_in_seq_order(cluster_redis):
    await publish.check_racing_replicas_keep_cache_and_channel_in_seq_order(cluster_redis)


async def test_a_batch_spread_over_every_shard_publishes_each_symbol(cluster_redis):
    await publish.check_a_batch_publishes_each_symbol(cluster_redis)


async def apply_retrying(state: RegistryState, event: SubscriptionEvent) -> None:
    """As the registry's consumer does: a transition Redis refused (-TRYAGAIN while its
    slot is half migrated) is applied again."""
    for _ in range(200):
        try:
            await state.apply(event, fallback_ts=0)
            return
        except RedisError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{event} refused for 10 s")


async def test_registry_state_stays_exact_through_a_resharding(redis_cluster, cluster_redis):
    slot = await cluster_redis.cluster_keyslot(names.ACTIVE_SYMBOLS_KEY)
    source = redis_cluster.primary_of(names.ACTIVE_SYMBOLS_KEY)
    target = next(p for p in redis_cluster.primaries() if p != source)
    state = RegistryState(cluster_redis, tombstone_seconds=3600)
    events = build(history(3, edges=4, symbols=8, count=400), 3)
    order = delivery_order(events, 3)
    half = len(order) // 2
    for event in order[:half]:
        await apply_retrying(state, event)

    # The registry's slot range moves to another primary while events keep coming.
    moving = asyncio.create_task(asyncio.to_thread(
        redis_cluster.migrate_slots, range(max(0, slot - 8), slot + 8), target))
    for event in order[half:]:
        await apply_retrying(state, event)
    await moving

    assert redis_cluster.primary_of(names.ACTIVE_SYMBOLS_KEY) == target
    assert await read_sets(redis_cluster.url, "cluster") == Model(events).expected()


def updates_of(client: WsClient, symbol: str) -> list[dict]:
    found = []
    for message in client.received:
        if message.get("type") == "price_update" and message["symbol"] == symbol:
            found.append(message)
        elif message.get("type") == "batch_update":
            found += [u for u in message["updates"] if u["symbol"] == symbol]
    return found


def assert_gaps_explained(updates: list[dict]) -> None:
    """In `seq` order per epoch, and the only gap is the failover's, closed by the
    newest tick (which the next update is, by construction of a gap)."""
    gaps = 0
    for before, after in zip(updates, updates[1:]):
        if after["epoch"] != before["epoch"] or after.get("snapshot"):
            continue
        assert after["seq"] > before["seq"], (before, after)
        gaps += after["seq"] > before["seq"] + 1
    assert gaps <= 1, [(u["seq"], u.get("snapshot")) for u in updates]


async def test_ticks_flow_through_any_edge_and_survive_a_primary_failover(
        redis_cluster, cluster_redis, kafka_bootstrap, tmp_path: Path):
    launcher = ServiceLauncher(redis_cluster.url, kafka_bootstrap, tmp_path / "logs",
                               env={"TICKWIRE_LOG_FORMAT": "text", "TICKWIRE_REDIS_MODE": "cluster"})
    stack = Stack(launcher, [], tmp_path, None)
    clients: list[WsClient] = []
    primary = None
    try:
        stack.registry()
        stack.ingestor()
        edges = [stack.edge("edge-1"), stack.edge("edge-2")]
        for edge in edges:
            client = await WsClient.connect(edge.ws_url)
            await client.send({"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
            clients.append(client)
        for client in clients:
            await client.updates("AAPL", 3)

        primary = redis_cluster.primary_of(names.tick_channel("AAPL"))
        redis_cluster.nodes[primary].kill()
        # Its replica takes over within a few node timeouts; every client sees AAPL again.
        for client in clients:
            await newer_update(client, "AAPL", updates_of(client, "AAPL")[-1], timeout=15)
        assert redis_cluster.primary_of(names.tick_channel("AAPL")) != primary
        for client in clients:
            await client.updates("AAPL", 3)
            assert_gaps_explained(updates_of(client, "AAPL"))
            assert_gaps_explained(updates_of(client, "MSFT"))
    finally:
        for client in clients:
            await client.close()
        for process in reversed(stack.started):
            process.stop()
        if primary is not None:
            redis_cluster.start_node(primary)  # back, as a replica of the promoted node


async def newer_update(client: WsClient, symbol: str, after: dict, timeout: float) -> dict:
    """The first update of `symbol` newer than `after`: a later `seq`, or a new epoch."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                for update in await client.updates(symbol, 1, timeout=timeout):
                    if update["epoch"] != after["epoch"] or update["seq"] > after["seq"]:
                        return update
    except TimeoutError:
        seen = [(u["epoch"], u["seq"], u.get("snapshot")) for u in updates_of(client, symbol)]
        raise AssertionError(f"no {symbol} update newer than seq {after['seq']} in {timeout} s; "
                             f"seen {seen[-12:]}") from None
