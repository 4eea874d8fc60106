"""What the edge tells operators beyond its own counters: delivery latency, subscriptions per
symbol, reconnections, the fan-out span of a traced tick, performance warnings.

Cost on the hot path: one latency observation per tick per edge (at the tick's first
write, not per client), a span only for a tick that carries a sampled `traceparent`, and
gauges of subscriptions computed per scrape rather than kept up to date per subscribe.
"""

from __future__ import annotations

import heapq
import logging
from bisect import bisect_left
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import AbstractContextManager

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from tickwire.core import names
from tickwire.core.models import Tick
from tickwire.core.telemetry import FLOW, SUBSCRIPTION, TICK, context_from_traceparent

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("tickwire.edge")



class HotPathMetrics:
    """The metrics bumped per tick or per message, kept as plain numbers and exported at
    scrape time: a prometheus_client Counter or Histogram takes a lock per update, which
    the benchmark's profile showed as a quarter of the edge's cost per tick.
    Only the event loop's thread updates them."""

    LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
    SENT_KINDS = ("price_update", "batch_update", "control")

    def __init__(self) -> None:
        self.ticks_received = 0
        self.conflated = 0
        self.sent = dict.fromkeys(self.SENT_KINDS, 0)
        self._latency_counts = [0] * (len(self.LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self._latency_sum = 0.0

    def observe_latency(self, seconds: float) -> None:
        self._latency_counts[bisect_left(self.LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def describe(self):
        return list(self._families())

    def collect(self):
        return list(self._families())

    def _families(self):
        yield CounterMetricFamily("tickwire_edge_ticks_received", "Ticks received from Redis",
                                  value=self.ticks_received)
        yield CounterMetricFamily(
            "tickwire_edge_conflated_updates",
            "Updates replaced by a newer one before they were written", value=self.conflated)
        sent = CounterMetricFamily("tickwire_edge_messages_sent", "Frames written to clients",
                                   labels=["type"])
        for kind, count in self.sent.items():
            sent.add_metric([kind], count)
        yield sent
        cumulative, buckets = 0, []
        for bound, count in zip((*self.LATENCY_BUCKETS, float("inf")), self._latency_counts):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        yield HistogramMetricFamily(
            "tickwire_edge_tick_latency_seconds",
            "End to end: from the ingestor publishing a tick to this edge writing it to its "
            "first client (once per tick per edge)",
            buckets=buckets, sum_value=self._latency_sum)


HOT = HotPathMetrics()
REGISTRY.register(HOT)
RECONNECTIONS = Counter(
    "tickwire_edge_reconnections_total",
    "WebSockets accepted from an address whose previous socket on this edge closed less than "
    "a minute before (an estimate: clients behind one NAT address count as one)")
SUBSCRIPTIONS = Gauge("tickwire_edge_subscriptions",
                      "Subscriptions held on this edge (client × symbol, REST poll interest "
                      "counting once per symbol)")
TOP_SYMBOLS = 20
SYMBOL_SUBSCRIBERS = Gauge(
    "tickwire_edge_symbol_subscribers",
    f"Subscribers on this edge of its {TOP_SYMBOLS} most subscribed symbols (bounded "
    "cardinality: other symbols are not exported)", ["symbol"])


class RecentCloses:
    """Addresses whose socket closed within `window` seconds, at most `limit` of them."""

    def __init__(self, window: float = 60.0, limit: int = 10_000):
        self._window = window
        self._limit = limit
        self._closed: OrderedDict[str, float] = OrderedDict()

    def closed(self, address: str, now: float | None = None) -> None:
        self._closed[address] = time.monotonic() if now is None else now
        self._closed.move_to_end(address)
        while len(self._closed) > self._limit:
            self._closed.popitem(last=False)

    def reconnecting(self, address: str, now: float | None = None) -> bool:
        """Whether a connection from `address` now is a reconnection (counted, if so)."""
        at = self._closed.pop(address, None)
        if at is None:
            return False
        if (time.monotonic() if now is None else now) - at > self._window:
            return False
        RECONNECTIONS.inc()
        return True


class LatencyWarnings:
    """Logs a tick slower than the threshold, at most once per `every` seconds."""

    def __init__(self, threshold: float = 1.0, every: float = 30.0):
        self.threshold = threshold
        self._every = every
        self._next = 0.0
        self._suppressed = 0

    def slow(self, tick: Tick, seconds: float) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        self._next = now + self._every
        log.warning("high tick latency", extra={
            "symbol": tick.symbol, "seq": tick.seq, "latency_ms": round(seconds * 1000, 1),
            "threshold_ms": round(self.threshold * 1000), "suppressed": self._suppressed})
        self._suppressed = 0


LATENCY_WARNINGS = LatencyWarnings()


def observe_first_writes(entries: Iterable) -> None:
    """After a write of TickFrames: the first write of each live tick on this edge
    observes its end-to-end latency (a snapshot's frames count as written already)."""
    for frames in entries:
        if not frames.written:
            observe_first_write(frames, frames.tick)


def observe_first_write(frames, tick: Tick) -> None:
    """The first write of a live tick on this edge (the caller checked `frames.written`)."""
    frames.written = True
    seconds = max(0.0, (time.time_ns() - tick.published_at) / 1e9)
    HOT.observe_latency(seconds)
    if seconds > LATENCY_WARNINGS.threshold:
        LATENCY_WARNINGS.slow(tick, seconds)


def fan_out_span(tick: Tick, channel: str) -> AbstractContextManager[trace.Span]:
    """The CONSUMER span of a traced tick on this edge, child of the ingestor's publish."""
    age_ms = max(0.0, (time.time_ns() - tick.published_at) / 1e6)
    return TRACER.start_as_current_span(
        "tick fan-out", context=context_from_traceparent(tick.traceparent),
        kind=SpanKind.CONSUMER,
        attributes={FLOW: TICK, "messaging.system": "redis",
                    "messaging.destination.name": channel, "tickwire.symbol": tick.symbol,
                    "tickwire.seq": tick.seq, "tickwire.publish_to_edge_ms": round(age_ms, 3)})


def export_subscriptions(counts: dict[str, int]) -> None:
    """Per scrape: total subscriptions, and the subscribers of the top symbols."""
    SUBSCRIPTIONS.set(sum(counts.values()))
    SYMBOL_SUBSCRIBERS.clear()
    for symbol, count in heapq.nlargest(TOP_SYMBOLS, counts.items(), key=lambda kv: kv[1]):
        SYMBOL_SUBSCRIBERS.labels(symbol).set(count)


def upstream_span(action: str, symbols: list[str]) -> AbstractContextManager[trace.Span]:
    """The root of a subscription flow: this edge's interest in `symbols` changes upstream
    (Redis channels and the Kafka events the registry consumes)."""
    return TRACER.start_as_current_span(
        f"edge {action}", attributes={
            FLOW: SUBSCRIPTION, "tickwire.symbols": symbols[:20],
            "tickwire.symbol_count": len(symbols),
            "messaging.destination.name": names.SUBSCRIPTIONS_TOPIC})
