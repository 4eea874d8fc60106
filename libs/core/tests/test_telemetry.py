"""tickwire.core.telemetry: sampling by flow, carrying context, log lines with trace ids."""

from __future__ import annotations

import logging

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tickwire.core import telemetry
from tickwire.core.logs import JsonFormatter, TextFormatter
from tickwire.core.telemetry import (FLOW, SUBSCRIPTION, TICK, build_provider,
                                     context_from_headers, context_from_traceparent, exporting,
                                     kafka_headers, traceparent)


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = build_provider("tickwire-test", "t-1", tick_ratio=0.0, subscription_ratio=1.0,
                              processors=[SimpleSpanProcessor(exporter)])
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


def test_ticks_follow_their_ratio_and_subscriptions_are_always_kept(traced):
    tracer, exporter = traced
    with tracer.start_as_current_span("tick", attributes={FLOW: TICK}) as span:
        assert not span.get_span_context().trace_flags.sampled
        assert traceparent() is None and kafka_headers() == []
    with tracer.start_as_current_span("subscribe", attributes={FLOW: SUBSCRIPTION}):
        carried = traceparent()
        # A tick-flow child of a kept subscription is kept too (parent-based).
        with tracer.start_as_current_span("first fetch", attributes={FLOW: TICK}) as child:
            assert child.get_span_context().trace_flags.sampled
    assert [s.name for s in exporter.get_finished_spans()] == ["first fetch", "subscribe"]
    assert carried and carried.startswith("00-") and int(carried[-2:], 16) & 1  # sampled


def test_context_travels_through_a_traceparent_and_kafka_headers(traced):
    tracer, exporter = traced
    with tracer.start_as_current_span("edge", attributes={FLOW: SUBSCRIPTION}) as edge:
        headers = kafka_headers()
        carried = traceparent()
    assert headers == [("traceparent", carried.encode())]
    for parent in (context_from_headers(headers), context_from_traceparent(carried)):
        with tracer.start_as_current_span("registry", context=parent, attributes={FLOW: TICK}):
            pass
    children = [s for s in exporter.get_finished_spans() if s.name == "registry"]
    assert len(children) == 2
    assert all(c.context.trace_id == edge.get_span_context().trace_id for c in children)
    assert all(c.parent.span_id == edge.get_span_context().span_id for c in children)


@pytest.mark.parametrize("value", [None, "", "garbage", b"00-zz-yy-01"])
def test_a_missing_or_malformed_traceparent_gives_no_parent(value):
    assert context_from_traceparent(value) is None
    assert context_from_headers([("other", b"x")]) is None


def test_export_needs_an_endpoint(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert not exporting()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert exporting()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert not exporting()


def test_the_resource_names_service_and_instance(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    attributes = build_provider("tickwire-edge", "edge-7", 0.0, 1.0).resource.attributes
    assert attributes["service.name"] == "tickwire-edge"
    assert attributes["service.instance.id"] == "edge-7"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-in-prod")
    assert build_provider("tickwire-edge", "e", 0.0, 1.0).resource.attributes[
        "service.name"] == "edge-in-prod"


def test_log_lines_carry_the_ids_of_a_sampled_span(traced):
    tracer, _ = traced
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "t"})
    assert "trace_id" not in orjson.loads(JsonFormatter("svc").format(record))
    with tracer.start_as_current_span("s", attributes={FLOW: SUBSCRIPTION}) as span:
        entry = orjson.loads(JsonFormatter("svc").format(record))
        text = TextFormatter("svc").format(record)
    context = span.get_span_context()
    assert entry["trace_id"] == f"{context.trace_id:032x}"
    assert entry["span_id"] == f"{context.span_id:016x}"
    assert f"trace_id={entry['trace_id']}" in text


def test_instance_id_prefers_edge_then_replica():
    class Edge:
        edge_id = "edge-1"

    class Replica:
        replica_id = "r-2"

    assert telemetry.instance_id(Edge()) == "edge-1"
    assert telemetry.instance_id(Replica()) == "r-2"
    assert telemetry.instance_id(object())  # host-pid
    assert trace.get_current_span() is trace.INVALID_SPAN
