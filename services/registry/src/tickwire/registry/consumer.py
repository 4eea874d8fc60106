"""Applies `market-data.subscriptions` to Redis.

Guarantees:
- At-least-once: a batch's offsets are committed only after every event in it is in
  Redis (the batch is applied as one pipelined call, not one round trip per event). A Redis outage stalls the loop (it waits and retries) instead of skipping
  events; a crash or a rebalance before the commit makes some replica re-apply them,
  which changes nothing because every transition is idempotent (`state`).
- Records that are not valid events are counted and skipped: they can never succeed.
- After each batch the replica records, per assigned partition, when it was last caught
  up (`progress`), and exports the lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tickwire.core import names
from tickwire.core.eventlog import KafkaError
from tickwire.core.events import EventError, SubscriptionEvent, SubscriptionEventType
from tickwire.core.telemetry import (FLOW, SUBSCRIPTION, TICK, context_from_headers,
                                     kafka_attributes, traceparent)
from tickwire.registry import progress
from tickwire.registry.health import Health
from tickwire.registry.metrics import (ACTIVITY_CHANGES, APPLY_SECONDS, COMMIT_FAILURES,
                                       CONSUMER_LAG, EVENTS, INVALID_EVENTS, STALE_EVENTS)
from tickwire.registry.errors import REDIS_ERRORS
from tickwire.registry.retry import describe, until_done
from tickwire.registry.state import Outcome, Pending, RegistryState

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("tickwire.registry")

MAX_BATCH = 500
POLL_MS = 500


class Membership(ConsumerRebalanceListener):
    """Marks the replica as joined once the group assigned it partitions (possibly none),
    and drops the lag of partitions that moved elsewhere."""

    def __init__(self, health: Health):
        self._health = health

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            with contextlib.suppress(KeyError):  # never fetched here: no lag exported
                CONSUMER_LAG.remove(str(tp.partition))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._health.joined = True
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class SubscriptionConsumer:
    def __init__(self, consumer: AIOKafkaConsumer, state: RegistryState, health: Health,
                 on_activity_change: Callable[[], None]):
        self._consumer = consumer
        self._state = state
        self._health = health
        self._on_activity_change = on_activity_change

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set: fetch, apply, commit. A batch in progress is finished
        (applied and committed) before the loop returns."""
        while not stopping.is_set():
            batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_BATCH)
            try:
                await self._apply([r for records in batches.values() for r in records])
            except Exception:
                # The consumer's position is already past this batch: move it back, or
                # the restarted loop would skip what was not applied and commit past it.
                for tp, records in batches.items():
                    if tp in self._consumer.assignment():
                        self._consumer.seek(tp, records[0].offset)
                raise
            if batches:
                await self._commit({tp: records[-1].offset + 1 for tp, records in batches.items()})
            await self._report_progress()

    async def _apply(self, records: list) -> None:
        """One fetch's records, partitions interleaved but each in its order, applied in
        one call (`RegistryState.apply_many`: a pipeline per run of subscribes)."""
        pending: list[Pending] = []
        spans = []
        for record in records:
            event = self._decode(record)
            if event is None:
                continue
            span = self._span(record, event)
            # The activity changes this event causes carry this span's context on to the
            # announcements (outbox entries, then Kafka headers).
            with trace.use_span(span, end_on_exit=False):
                pending.append(Pending(event, record.timestamp, traceparent() or ""))
            spans.append(span)
        if not pending:
            return
        started = time.perf_counter()
        try:
            outcomes = await until_done("redis", "apply", self._health, self._state.apply_many,
                                        pending)
        except BaseException:
            for span in spans:
                span.end()
            raise
        APPLY_SECONDS.observe(time.perf_counter() - started)
        for (event, _, _), outcome, span in zip(pending, outcomes, spans):
            span.set_attributes({"tickwire.activity_changes": outcome.changed,
                                 "tickwire.stale": outcome.stale})
            with trace.use_span(span, end_on_exit=True):  # its log lines carry its trace
                self._count(event, outcome)

    def _decode(self, record) -> SubscriptionEvent | None:
        try:
            return SubscriptionEvent.decode(record.value or b"")
        except EventError as exc:
            INVALID_EVENTS.inc()
            log.warning("skipping a record that is not a subscription event: %s", exc,
                        extra={"partition": record.partition, "offset": record.offset})
            return None

    def _span(self, record, event: SubscriptionEvent):
        """The event's CONSUMER span, child of the edge's span that produced it."""
        flow = TICK if event.type is SubscriptionEventType.EDGE_HEARTBEAT else SUBSCRIPTION
        return TRACER.start_span(
            f"{names.SUBSCRIPTIONS_TOPIC} process", kind=SpanKind.CONSUMER,
            context=context_from_headers(record.headers),
            attributes=kafka_attributes(names.SUBSCRIPTIONS_TOPIC, **{
                FLOW: flow, "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.message.offset": record.offset,
                "tickwire.event": str(event.type), "tickwire.edge_id": event.edge_id,
                "tickwire.symbol": event.symbol or ""}))

    def _count(self, event: SubscriptionEvent, outcome: Outcome) -> None:
        EVENTS.labels(str(event.type)).inc()
        if outcome.stale:
            STALE_EVENTS.inc()
        if outcome.changed:
            ACTIVITY_CHANGES.inc(outcome.changed)
            log.info("symbol activity changed", extra={
                "edge": event.edge_id, "event": str(event.type),
                "symbol": event.symbol, "changes": outcome.changed})
            self._on_activity_change()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        # aiokafka itself retries a commit while the coordinator is unreachable.
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced: the partitions' new owner re-applies these events.
            COMMIT_FAILURES.inc()
            log.warning("offset commit refused after a rebalance: %s", exc)
        except KafkaError as exc:
            COMMIT_FAILURES.inc()
            log.warning("offset commit failed; the events will be re-applied: %s", describe(exc))

    async def _report_progress(self) -> None:
        marks = {}
        for p in await progress.observe(self._consumer):
            CONSUMER_LAG.labels(str(p.partition)).set(p.lag)
            if p.caught_up_at is not None:
                marks[p.partition] = p.caught_up_at
        if not marks:
            return
        try:
            await self._state.record_progress(marks)
        except REDIS_ERRORS as exc:
            # Only delays expiry; the next batch records it again.
            self._health.mark("redis", False)
            log.warning("cannot record consumer progress: %s", describe(exc))
