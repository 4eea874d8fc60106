"""The edge's side of `market-data.subscriptions`: tell the registry what this edge holds.

Never blocks the caller: events go into a bounded queue that one task hands to Kafka, so
a broker outage slows nothing on the client path. The producer is idempotent and
retries; an event dropped on overflow or lost in an outage heals itself, because every
`registry_heartbeat_seconds` an `edge_heartbeat` carries the edge's whole symbol set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from prometheus_client import Counter

from tickwire.core import names
from tickwire.core.eventlog import KafkaError
from tickwire.core.events import SubscriptionEvent, SubscriptionEventType
from tickwire.core.telemetry import FLOW, SUBSCRIPTION, TICK, kafka_attributes, kafka_headers

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("tickwire.edge")

EVENTS_FAILED = Counter("tickwire_edge_subscription_events_failed_total",
                        "Subscription events not delivered to Kafka (healed by heartbeats)",
                        ["reason"])


class Announcements:
    def __init__(self, producer: AIOKafkaProducer, edge_id: str, queue_size: int = 50_000):
        self._producer = producer
        self.edge_id = edge_id
        self._last_ts = 0
        # Each event with the trace context it was emitted in (its record carries it on).
        self._queue: asyncio.Queue[tuple[SubscriptionEvent, Context]] = asyncio.Queue(queue_size)
        self.kafka_ok = True

    def _ts(self) -> int:
        """Strictly increasing per edge, so the registry can order this edge's events."""
        self._last_ts = max(int(time.time() * 1000), self._last_ts + 1)
        return self._last_ts

    def subscribed(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            self._enqueue(SubscriptionEvent(SubscriptionEventType.SUBSCRIBE, self.edge_id,
                                            symbol=symbol, ts=self._ts()))

    def unsubscribed(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            self._enqueue(SubscriptionEvent(SubscriptionEventType.UNSUBSCRIBE, self.edge_id,
                                            symbol=symbol, ts=self._ts()))

    def heartbeat(self, symbols: Iterable[str]) -> None:
        self._enqueue(SubscriptionEvent(SubscriptionEventType.EDGE_HEARTBEAT, self.edge_id,
                                        symbols=tuple(sorted(symbols)), ts=self._ts()))

    def _enqueue(self, event: SubscriptionEvent) -> None:
        try:
            self._queue.put_nowait((event, otel_context.get_current()))
        except asyncio.QueueFull:
            EVENTS_FAILED.labels("overflow").inc()

    async def heartbeat_loop(self, symbols: Callable[[], Iterable[str]], interval: float) -> None:
        while True:
            self.heartbeat(symbols())
            await asyncio.sleep(interval)

    async def run(self) -> None:
        """Hand queued events to the producer, in order, until cancelled."""
        while True:
            event, emitted_in = await self._queue.get()
            try:
                delivery = await self._send(event, emitted_in)
            except KafkaError as exc:
                self._failed(exc)
                continue
            delivery.add_done_callback(self._delivered)

    async def _send(self, event: SubscriptionEvent, parent: Context | None = None) -> asyncio.Future:
        """Hand one event to the producer in a PRODUCER span whose context rides in the
        record's headers (heartbeats are sampled like ticks: they are periodic)."""
        flow = TICK if event.type is SubscriptionEventType.EDGE_HEARTBEAT else SUBSCRIPTION
        with TRACER.start_as_current_span(
                f"{names.SUBSCRIPTIONS_TOPIC} publish", context=parent, kind=SpanKind.PRODUCER,
                attributes=kafka_attributes(names.SUBSCRIPTIONS_TOPIC, **{
                    FLOW: flow, "tickwire.event": str(event.type),
                    "tickwire.edge_id": self.edge_id, "tickwire.symbol": event.symbol or "",
                    "tickwire.symbol_count": len(event.symbols) or int(bool(event.symbol))})):
            return await self._producer.send(names.SUBSCRIPTIONS_TOPIC, key=event.key(),
                                             value=event.encode(), headers=kafka_headers())

    async def edge_down(self, timeout: float = 5.0) -> None:
        """Sent at shutdown after what is queued, and waited for: the registry drops this
        edge at once instead of waiting for its lease to expire."""
        event = SubscriptionEvent(SubscriptionEventType.EDGE_DOWN, self.edge_id, ts=self._ts())
        try:
            async with asyncio.timeout(timeout):
                while not self._queue.empty():
                    await self._send(*self._queue.get_nowait())
                delivery = await self._send(event)
                await delivery
        except (KafkaError, TimeoutError) as exc:
            log.warning("edge_down not delivered; the lease will expire",
                        extra={"error": repr(exc)})

    def _delivered(self, delivery: asyncio.Future) -> None:
        if delivery.cancelled():
            return
        if delivery.exception() is not None:
            self._failed(delivery.exception())
        else:
            self.kafka_ok = True

    def _failed(self, exc: BaseException) -> None:
        self.kafka_ok = False
        EVENTS_FAILED.labels("kafka").inc()
        log.warning("subscription event not delivered", extra={"error": repr(exc)})
