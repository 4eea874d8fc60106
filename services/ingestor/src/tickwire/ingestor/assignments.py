"""Which active symbols this replica polls: those of its partitions of the compacted
`market-data.active-symbols` topic.

Replicas share the topic as one consumer group, so each partition, and with it each
symbol, belongs to exactly one replica. On every assignment the replica reads its
partitions from the beginning and rebuilds their state; a revoked partition's symbols
are dropped at once, so two replicas never poll the same symbol for longer than a
rebalance takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from tickwire.core import names
from tickwire.core.eventlog import KafkaError
from tickwire.core.events import ActiveSymbolEvent, EventError
from tickwire.core.telemetry import FLOW, SUBSCRIPTION, context_from_headers, kafka_attributes
from tickwire.ingestor.metrics import KAFKA_LAG

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("tickwire.ingestor")

# A record older than this is being re-read (every assignment replays the partition):
# its trace ended long ago, so it gets no span.
REPLAY_HORIZON_MS = 30_000


class ActiveSymbols(ConsumerRebalanceListener):
    def __init__(self) -> None:
        # Told of every activation and deactivation read (replays included): the
        # lifetime of the symbol's Redis keys follows them (`lifetimes`).
        self.on_change: Callable[[str, bool], None] | None = None
        self._by_partition: dict[int, dict[str, int]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._next_offset: dict[int, int] = {}  # partition → offset after the last record read
        # symbol → the trace context of the event that just activated it, until the poller
        # starts its first fetch (`take_origins`): the subscription's trace goes on there.
        self._origins: dict[str, Context] = {}
        self._stream_origins: dict[str, Context] = {}  # the same, until it first streams
        self.kafka_ok = False

    def symbols(self) -> dict[str, int]:
        """symbol → subscriber count, for every active symbol this replica owns."""
        merged: dict[str, int] = {}
        for symbols in self._by_partition.values():
            merged.update(symbols)
        return merged

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            for symbol in self._by_partition.pop(tp.partition, None) or ():
                self._origins.pop(symbol, None)
                self._stream_origins.pop(symbol, None)
            self._next_offset.pop(tp.partition, None)
            with contextlib.suppress(KeyError):
                KAFKA_LAG.remove(str(tp.partition))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self._by_partition[tp.partition] = {}
            self._next_offset.pop(tp.partition, None)
        if assigned and self._consumer is not None:
            self._consumer.seek_to_beginning(*assigned)
        log.info("active-symbol partitions assigned",
                 extra={"partitions": sorted(tp.partition for tp in assigned)})

    def apply(self, partition: int, event: ActiveSymbolEvent) -> None:
        symbols = self._by_partition.setdefault(partition, {})
        if self.on_change is not None:
            self.on_change(event.symbol, event.active)
        if event.active:
            symbols[event.symbol] = max(1, event.subscribers)
        else:
            symbols.pop(event.symbol, None)
            self._origins.pop(event.symbol, None)
            self._stream_origins.pop(event.symbol, None)

    def take_origins(self, symbols: list[str]) -> list[Context]:
        """The activation contexts of those of `symbols` not fetched since they became active."""
        return [origin for s in symbols if (origin := self._origins.pop(s, None)) is not None]

    def take_stream_origin(self, symbol: str) -> Context | None:
        """The activation context of `symbol` if it has not streamed since it became active."""
        return self._stream_origins.pop(symbol, None)

    def _apply_record(self, partition: int, record) -> None:
        event = ActiveSymbolEvent.decode(record.value)
        parent = context_from_headers(record.headers)
        if parent is None or time.time() * 1000 - record.timestamp > REPLAY_HORIZON_MS:
            self.apply(partition, event)
            return
        with TRACER.start_as_current_span(
                f"{names.ACTIVE_SYMBOLS_TOPIC} process", context=parent, kind=SpanKind.CONSUMER,
                attributes=kafka_attributes(names.ACTIVE_SYMBOLS_TOPIC, **{
                    FLOW: SUBSCRIPTION, "messaging.kafka.destination.partition": partition,
                    "messaging.kafka.message.offset": record.offset,
                    "tickwire.symbol": event.symbol, "tickwire.active": event.active})) as span:
            known = event.symbol in self._by_partition.get(partition, {})
            self.apply(partition, event)
            if event.active and not known:
                origin = trace.set_span_in_context(span)
                self._origins[event.symbol] = self._stream_origins[event.symbol] = origin
            log.info("symbol %s", "activated" if event.active else "deactivated",
                     extra={"symbol": event.symbol, "partition": partition})

    async def run(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                self.kafka_ok = True
            except KafkaError as exc:
                self.kafka_ok = False
                log.warning("kafka consume failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(1)
                continue
            for tp, records in batches.items():
                if tp.partition not in self._by_partition:
                    continue  # revoked while the batch was in flight
                for record in records:
                    try:
                        self._apply_record(tp.partition, record)
                    except EventError as exc:
                        log.warning("skipping invalid active-symbol record",
                                    extra={"error": str(exc)})
                if records:
                    self._next_offset[tp.partition] = records[-1].offset + 1
            self._measure_lag(consumer)

    def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                read = self._next_offset.get(tp.partition, 0)
                KAFKA_LAG.labels(str(tp.partition)).set(max(0, highwater - read))
