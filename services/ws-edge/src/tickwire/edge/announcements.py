"""The edge's side of `market-data.subscriptions`: tell the registry what this edge holds.

Events are sent without waiting for Kafka's acknowledgement: the producer is idempotent
and retries, and every `registry_heartbeat_seconds` an `edge_heartbeat` carries the
edge's whole symbol set, so an event lost to a broker outage heals itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from tickwire.core import names
from tickwire.core.eventlog import KafkaError
from tickwire.core.events import SubscriptionEvent, SubscriptionEventType

log = logging.getLogger(__name__)

EVENTS_FAILED = Counter("tickwire_edge_subscription_events_failed_total",
                        "Subscription events Kafka did not take (healed by heartbeats)")


class Announcements:
    def __init__(self, producer: AIOKafkaProducer, edge_id: str):
        self._producer = producer
        self.edge_id = edge_id
        self._last_ts = 0
        self.kafka_ok = True

    def _ts(self) -> int:
        """Strictly increasing per edge, so the registry can order this edge's events."""
        self._last_ts = max(int(time.time() * 1000), self._last_ts + 1)
        return self._last_ts

    async def subscribed(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            await self._send(SubscriptionEvent(SubscriptionEventType.SUBSCRIBE, self.edge_id,
                                               symbol=symbol, ts=self._ts()))

    async def unsubscribed(self, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            await self._send(SubscriptionEvent(SubscriptionEventType.UNSUBSCRIBE, self.edge_id,
                                               symbol=symbol, ts=self._ts()))

    async def heartbeat(self, symbols: Iterable[str]) -> None:
        await self._send(SubscriptionEvent(SubscriptionEventType.EDGE_HEARTBEAT, self.edge_id,
                                           symbols=tuple(sorted(symbols)), ts=self._ts()))

    async def edge_down(self, timeout: float = 5.0) -> None:
        """Sent at shutdown and waited for: the registry drops this edge at once."""
        event = SubscriptionEvent(SubscriptionEventType.EDGE_DOWN, self.edge_id, ts=self._ts())
        try:
            delivery = await self._producer.send(names.SUBSCRIPTIONS_TOPIC, key=event.key(),
                                                 value=event.encode())
            await asyncio.wait_for(delivery, timeout)
        except (KafkaError, asyncio.TimeoutError) as exc:
            log.warning("edge_down not delivered; the lease will expire",
                        extra={"error": repr(exc)})

    async def heartbeat_loop(self, symbols: Callable[[], Iterable[str]], interval: float) -> None:
        while True:
            await self.heartbeat(symbols())
            await asyncio.sleep(interval)

    async def _send(self, event: SubscriptionEvent) -> None:
        try:
            delivery = await self._producer.send(names.SUBSCRIPTIONS_TOPIC, key=event.key(),
                                                 value=event.encode())
        except KafkaError as exc:
            self._failed(exc)
            return
        delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Future) -> None:
        if delivery.cancelled():
            return
        if delivery.exception() is not None:
            self._failed(delivery.exception())
        else:
            self.kafka_ok = True

    def _failed(self, exc: BaseException) -> None:
        self.kafka_ok = False
        EVENTS_FAILED.inc()
        log.warning("subscription event not delivered", extra={"error": repr(exc)})
