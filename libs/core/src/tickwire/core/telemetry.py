"""Traces: one OpenTelemetry TracerProvider per service process, and W3C trace context
carried across Kafka, Redis Pub/Sub and the registry's outbox.

Export. Spans go out over OTLP/HTTP (protobuf) only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set and `OTEL_TRACES_EXPORTER` is not `none`; the
other standard `OTEL_*` variables (headers, timeout, `OTEL_BSP_*`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`) apply as usual. Otherwise spans are sampled, logged with their
ids and dropped. `OTEL_SDK_DISABLED=true` turns tracing off entirely.

Sampling. A root span names its flow in the attribute `tickwire.flow`:
- `tick` (poll rounds, provider fetches, tick publish/fan-out, edge heartbeats): periodic
  and high-volume, kept at `TICKWIRE_TRACE_TICK_RATIO` (1 % by default);
- anything else, the subscription flow (subscribe → registry → active event → first
  fetch): rare and what operators ask about, kept at `TICKWIRE_TRACE_SUBSCRIPTION_RATIO`
  (always, by default).
A span with a parent follows its parent's decision, also across processes, so a trace is
kept or dropped whole. Context is carried only for sampled spans (`traceparent()` is None
otherwise): an unsampled tick costs no bytes on the wire and no span on the edges.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (ParentBased, Sampler, SamplingResult,
                                              TraceIdRatioBased)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

FLOW = "tickwire.flow"
TICK = "tick"
SUBSCRIPTION = "subscription"

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()


class FlowSampler(Sampler):
    """Root-span sampling by flow: ticks at one ratio, everything else at another."""

    def __init__(self, tick_ratio: float, subscription_ratio: float):
        self._tick = TraceIdRatioBased(tick_ratio)
        self._other = TraceIdRatioBased(subscription_ratio)

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None) -> SamplingResult:
        chosen = self._tick if attributes and attributes.get(FLOW) == TICK else self._other
        return chosen.should_sample(parent_context, trace_id, name, kind, attributes, links,
                                    trace_state)

    def get_description(self) -> str:
        return f"FlowSampler{{tick={self._tick.rate}, other={self._other.rate}}}"


def sampler(tick_ratio: float, subscription_ratio: float) -> Sampler:
    return ParentBased(root=FlowSampler(tick_ratio, subscription_ratio))


def instance_id(settings: object) -> str:
    """This process among its service's replicas: the edge id, the replica id, or host-pid."""
    for field in ("edge_id", "replica_id"):
        value = getattr(settings, field, "")
        if value:
            return str(value)
    return f"{socket.gethostname()}-{os.getpid()}"


def exporting() -> bool:
    """Whether the standard variables ask for OTLP export of traces."""
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def build_provider(service_name: str, instance: str, tick_ratio: float,
                   subscription_ratio: float,
                   processors: Iterable[SpanProcessor] = ()) -> TracerProvider:
    """A provider for one service; `OTEL_SERVICE_NAME` wins over `service_name`."""
    attributes = {SERVICE_INSTANCE_ID: instance, "service.namespace": "tickwire"}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service_name
    provider = TracerProvider(resource=Resource.create(attributes),
                              sampler=sampler(tick_ratio, subscription_ratio))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def configure_tracing(service_name: str, instance: str, tick_ratio: float,
                      subscription_ratio: float) -> TracerProvider | None:
    """Install the process-wide provider (once, at start); None when tracing is disabled."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    processors: list[SpanProcessor] = []
    if exporting():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
        if protocol != "http/protobuf":
            log.warning("only OTLP over http/protobuf is supported; exporting with it",
                        extra={"requested": protocol})
        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    provider = build_provider(service_name, instance, tick_ratio, subscription_ratio, processors)
    trace.set_tracer_provider(provider)
    log.debug("tracing configured", extra={"exporting": bool(processors),
                                          "tick_ratio": tick_ratio,
                                          "subscription_ratio": subscription_ratio})
    return provider


def shutdown_tracing(provider: TracerProvider, timeout: float = 3.0) -> None:
    """Export what is buffered, waiting at most `timeout` seconds: an unreachable collector
    (whose exporter retries for up to OTEL_EXPORTER_OTLP_TIMEOUT) must not hold up a
    service's shutdown. Blocking: call it off the event loop."""
    stopping = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    stopping.start()
    stopping.join(timeout)


# ---- carrying context --------------------------------------------------------------


def traceparent() -> str | None:
    """The W3C traceparent of the current span if it is sampled, else None."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def context_from_traceparent(value: str | bytes | None) -> Context | None:
    """The remote parent a traceparent names; None for a missing or malformed one."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    context = _PROPAGATOR.extract({TRACEPARENT: value})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def kafka_headers() -> list[tuple[str, bytes]]:
    """Record headers carrying the current (sampled) span; a list, as aiokafka wants."""
    value = traceparent()
    return [(TRACEPARENT, value.encode())] if value else []


def context_from_headers(headers: Sequence[tuple[str, bytes]] | None) -> Context | None:
    for key, value in headers or ():
        if key == TRACEPARENT:
            return context_from_traceparent(value)
    return None


def span_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current sampled span, for log lines."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def kafka_attributes(topic: str, **extra) -> dict:
    """Messaging semantic-convention attributes of a Kafka span."""
    return {"messaging.system": "kafka", "messaging.destination.name": topic, **extra}
