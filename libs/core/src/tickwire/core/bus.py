"""The tick bus that fits a Redis client: classic Pub/Sub on one Redis, sharded Pub/Sub
on a Redis Cluster (same interface and delivery guarantee, see `tickbus` and `shardedbus`)."""

from __future__ import annotations

from collections.abc import Iterable

from tickwire.core import names
from tickwire.core.pubsub import MessageHandler
from tickwire.core.redisconn import RedisClient, is_cluster
from tickwire.core.shardedbus import ShardedTickBus
from tickwire.core.tickbus import RedisTickBus


def tick_bus(redis: RedisClient, on_message: MessageHandler | None = None,
             standing_channels: Iterable[str] = (names.CONTROL_CHANNEL,)) -> RedisTickBus:
    bus = ShardedTickBus if is_cluster(redis) else RedisTickBus
    return bus(redis, on_message, standing_channels)
