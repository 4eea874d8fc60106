"""Checks that hostile input left no trace upstream: every symbol that reached a Redis key,
a set, a Pub/Sub channel or a Kafka record is a valid one (DESIGN.md §3, Symbols)."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from tickwire.core import names
from tickwire.core.models import SYMBOL_PATTERN

# Key families that embed a symbol: (prefix, suffix).
SYMBOL_KEYS = [
    (names.QUOTE_KEY_PREFIX, names.SYMBOL_TAG_SUFFIX),
    (names.SEQ_KEY_PREFIX, names.SYMBOL_TAG_SUFFIX),
    (names.FEED_KEY_PREFIX, ""),
    (names.SYMBOL_EDGES_PREFIX, names.SYMBOL_EDGES_SUFFIX),
]
STANDING_CHANNELS = {names.CONTROL_CHANNEL, names.STATUS_CHANNEL}


def valid(symbol: object) -> bool:
    return isinstance(symbol, str) and SYMBOL_PATTERN.match(symbol) is not None \
        and symbol == symbol.strip()


async def redis_violations(redis_url: str) -> list[str]:
    """Keys, set members and channels naming something that is not a valid symbol."""
    redis = aioredis.Redis.from_url(redis_url, decode_responses=False)
    found: list[str] = []
    try:
        keys = [k.decode(errors="replace") for k in await redis.keys("*")]
        for key in keys:
            for prefix, suffix in SYMBOL_KEYS:
                if key.startswith(prefix) and key.endswith(suffix):
                    symbol = key[len(prefix):len(key) - len(suffix)]
                    if not valid(symbol):
                        found.append(f"key {key!r}")
        symbol_sets = [names.ACTIVE_SYMBOLS_KEY] + [
            k for k in keys if k.startswith(names.EDGE_KEY_PREFIX) and k.endswith(":symbols")]
        for key in symbol_sets:
            if key in keys and await redis.type(key) == b"set":
                for member in await redis.smembers(key):
                    if not valid(member.decode(errors="replace")):
                        found.append(f"member {member!r} of {key}")
        for channel in await redis.pubsub_channels():
            channel = channel.decode(errors="replace")
            if channel in STANDING_CHANNELS:
                continue
            if not channel.startswith(names.TICK_CHANNEL_PREFIX) or \
                    not valid(names.symbol_from_channel(channel)):
                found.append(f"channel {channel!r}")
    finally:
        await redis.aclose()
    return found


async def kafka_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) in `topic`, from the beginning to the current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(topic, p)
                          for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[bytes | None, bytes]] = []
        while await _behind(consumer, ends):
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                records += [(m.key, m.value) for m in messages]
        return records
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return True
    return False


async def kafka_violations(bootstrap: str) -> tuple[int, list[str]]:
    """(records checked, problems) over both tickwire topics."""
    found: list[str] = []
    subscriptions = await kafka_records(bootstrap, names.SUBSCRIPTIONS_TOPIC)
    for key, value in subscriptions:
        event = json.loads(value)
        kind = event.get("type")
        if event.get("v") != 1 or kind not in ("subscribe", "unsubscribe", "edge_heartbeat",
                                               "edge_down"):
            found.append(f"subscriptions record {value[:120]!r}")
        elif kind in ("subscribe", "unsubscribe") and (
                not valid(event.get("symbol")) or key != event["symbol"].encode()):
            found.append(f"subscriptions record {value[:120]!r} key {key!r}")
        elif kind == "edge_heartbeat" and not all(valid(s) for s in event.get("symbols", [])):
            bad = [s for s in event["symbols"] if not valid(s)][:5]
            found.append(f"heartbeat naming {bad!r}")
    active = await kafka_records(bootstrap, names.ACTIVE_SYMBOLS_TOPIC)
    for key, value in active:
        if value is not None and not valid(json.loads(value).get("symbol")):
            found.append(f"active-symbols record {value[:120]!r}")
    return len(subscriptions) + len(active), found


async def settle(seconds: float = 2.0) -> None:
    """Let queued announcements reach Kafka and the registry apply them."""
    await asyncio.sleep(seconds)
