"""How far the subscriptions topic has been read, and why expiry depends on it.

A partition is *caught up at C* when a fetch response received at time C reported a high
watermark that the replica had already applied to Redis: every event the broker had
accepted by C is in Redis. `caught_up_until` over all partitions is the moment up to
which the registry has heard everything any edge said. Only silence before that moment
proves an edge dead; silence after it may just be events the registry has not read yet
(a restart, a lagging replica, a Redis or Kafka outage), so those never expire an edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    partition: int
    lag: int                   # records fetched by the broker's count but not yet applied
    caught_up_at: int | None   # Unix ms of the fetch that proved it caught up, if it is


def partition_progress(partition: int, position: int, highwater: int,
                       polled_at: int | None) -> PartitionProgress:
    """`position` is the next offset to apply; `highwater` and `polled_at` come from the
    latest fetch response for the partition."""
    lag = max(0, highwater - position)
    return PartitionProgress(partition, lag, polled_at if lag == 0 else None)


def caught_up_until(marks: Mapping[int, int], partitions: Iterable[int]) -> int | None:
    """The time up to which every one of `partitions` has been applied; None while any of
    them has never been seen caught up."""
    times = [marks.get(p) for p in partitions]
    if not times or any(t is None for t in times):
        return None
    return min(times)


async def observe(consumer: AIOKafkaConsumer) -> list[PartitionProgress]:
    """Progress of the partitions assigned to `consumer` that have been fetched at least
    once. Call it between batches, after everything `getmany` returned was applied."""
    observed = []
    for tp in consumer.assignment():
        # A rebalance may revoke partitions while this loop awaits.
        if tp not in consumer.assignment():
            continue
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        # A fetched partition has a valid position, so this does not wait.
        position = await consumer.position(tp)
        observed.append(partition_progress(tp.partition, position, highwater,
                                           consumer.last_poll_timestamp(tp)))
    return observed
