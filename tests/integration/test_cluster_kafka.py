"""tickwire on a real three-broker KRaft Kafka (static quorum), started once for this
module: topics with three copies, two of them in sync for a write, survive a broker's
death without losing a subscription event."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tickwire.core import names
from tickwire.localstack import ServiceLauncher, free_port
from tickwire.localstack.cluster import LocalKafkaCluster, start_kafka_cluster

from integration.stack import Stack
from integration.test_registry import read_sets
from integration.wsclient import WsClient, eventually

SYMBOLS = [f"KC{i}" for i in range(12)]
REPLICATED = {"TICKWIRE_KAFKA_REPLICATION_FACTOR": "3", "TICKWIRE_KAFKA_MIN_INSYNC_REPLICAS": "2"}


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory) -> LocalKafkaCluster:
    cluster = start_kafka_cluster([free_port() for _ in range(3)], [free_port() for _ in range(3)],
                                  tmp_path_factory.mktemp("kafka-cluster"))
    yield cluster
    cluster.stop()


class Churner:
    """A client that subscribes and unsubscribes at random, each change acked."""

    def __init__(self, client: WsClient, edge: str, seed: int):
        self.client, self.edge = client, edge
        self.rng = random.Random(seed)
        self.held: set[str] = set()

    async def change(self) -> None:
        symbol = self.rng.choice(SYMBOLS)
        action = "unsubscribe" if symbol in self.held else "subscribe"
        await self.client.send({"action": action, "symbols": [symbol]})
        await self.client.until(lambda m: m.get("type") == f"{action}d" and symbol in m["symbols"])
        self.held ^= {symbol}


async def topic_settings(bootstrap: str, topic: str) -> tuple[int, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
        [config] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    replicas = len(description["partitions"][0]["replicas"])
    entries = {e[0]: e[1] for e in config.resources[0][4]}
    return replicas, entries["min.insync.replicas"]


async def test_no_subscription_event_is_lost_when_a_broker_dies_during_churn(
        kafka_cluster, redis_url, tmp_path: Path):
    launcher = ServiceLauncher(redis_url, kafka_cluster.bootstrap, tmp_path / "logs",
                               env={"TICKWIRE_LOG_FORMAT": "text", **REPLICATED})
    stack = Stack(launcher, [], tmp_path, None)
    churners: list[Churner] = []
    try:
        # Heartbeats (which would heal a lost event) are out of reach of this test.
        stack.registry(TICKWIRE_REGISTRY_LEASE_SECONDS="600")
        for n in (1, 2):
            stack.edge(f"edge-{n}", TICKWIRE_EDGE_REGISTRY_HEARTBEAT_SECONDS="600")
        assert await topic_settings(kafka_cluster.bootstrap, names.SUBSCRIPTIONS_TOPIC) == (3, "2")
        for n in range(6):
            edge = stack.edges[n % 2]
            client = await WsClient.connect(edge.ws_url)
            churners.append(Churner(client, edge.process.name, seed=n))

        async def churn(rounds: int) -> None:
            for _ in range(rounds):
                await asyncio.gather(*(c.change() for c in churners))

        await churn(10)
        kafka_cluster.brokers[2].kill()
        await churn(25)

        def expected() -> dict[str, frozenset[str]]:
            holdings: dict[str, set[str]] = {}
            for churner in churners:
                holdings.setdefault(churner.edge, set()).update(churner.held)
            return {edge: frozenset(s) for edge, s in holdings.items() if s}

        async def registry_matches() -> bool:
            return (await read_sets(redis_url)).holdings == expected()

        await eventually(registry_matches, timeout=60)
    finally:
        for churner in churners:
            await churner.client.close()
        for process in reversed(stack.started):
            process.stop()
        if not kafka_cluster.brokers[2].alive():
            kafka_cluster.start_broker(2)
