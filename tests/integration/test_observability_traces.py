"""End-to-end traces against real Redis and Kafka.

- In one process (the three services' apps in the test's event loop, an in-memory
  exporter): one trace id goes edge subscribe → Kafka → registry → outbox → Kafka →
  ingestor → first fetch → tick publish → Redis Pub/Sub → edge fan-out, with ticks
  themselves sampled at their own ratio (0 here: only the subscription's first round).
- Across processes (the services as started in production, exporting over OTLP/HTTP to a
  local receiver): spans of all three services arrive, with their resources, and a
  subscription's trace spans the three of them.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import orjson
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tickwire.core.logs import JsonFormatter
from tickwire.core.telemetry import build_provider
from tickwire.localstack import free_port

from integration.wsclient import WsClient, eventually, get_json

SUBSCRIPTIONS = "market-data.subscriptions"
ACTIVE = "market-data.active-symbols"

# The subscription flow, child → parent, as one trace must show it.
CHAIN = [
    (f"{SUBSCRIPTIONS} publish", "edge subscribe"),
    (f"{SUBSCRIPTIONS} process", f"{SUBSCRIPTIONS} publish"),
    (f"{ACTIVE} publish", f"{SUBSCRIPTIONS} process"),
    (f"{ACTIVE} process", f"{ACTIVE} publish"),
    ("poll round", f"{ACTIVE} process"),
    ("provider fetch", "poll round"),
    ("tick publish", "poll round"),
    ("tick fan-out", "tick publish"),
]


# ---- in one process: the in-memory exporter ------------------------------------------


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """The process-wide provider (set once per process, as OpenTelemetry requires): ticks
    at ratio 0, subscription flows always. Shut down afterwards, so later tests in this
    process record nothing."""
    exporter = InMemorySpanExporter()
    provider = build_provider("tickwire-inprocess", "test", tick_ratio=0.0,
                              subscription_ratio=1.0, processors=[SimpleSpanProcessor(exporter)])
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        pytest.fail("another TracerProvider was installed in this test process first")
    yield exporter
    provider.shutdown()
    exporter.clear()


@dataclass
class InProcess:
    edge_url: str
    registry_url: str


@pytest.fixture
async def in_process(redis_url: str, kafka_bootstrap: str, exporter) -> AsyncIterator[InProcess]:
    """registry, ingestor and one edge as aiohttp apps in this event loop; stopped in
    reverse order."""
    from tickwire.edge.app import build_app as edge_app
    from tickwire.edge.settings import EdgeSettings
    from tickwire.ingestor.app import build_app as ingestor_app
    from tickwire.ingestor.settings import IngestorSettings
    from tickwire.registry.app import build_app as registry_app
    from tickwire.registry.settings import RegistrySettings

    shared = {"redis_url": redis_url, "kafka_bootstrap_servers": kafka_bootstrap}
    ports = [free_port() for _ in range(3)]
    apps = [
        registry_app(RegistrySettings(port=ports[0], lease_seconds=6, **shared)),
        ingestor_app(IngestorSettings(port=ports[1], poll_interval=0.3, **shared)),
        edge_app(EdgeSettings(port=ports[2], edge_id="edge-mem", registry_heartbeat_seconds=1,
                              **shared)),
    ]
    runners: list[web.AppRunner] = []
    try:
        for app, port in zip(apps, ports):
            runner = web.AppRunner(app, handle_signals=False)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await eventually(lambda p=port: _ready(p), timeout=60)
        exporter.clear()
        yield InProcess(f"ws://127.0.0.1:{ports[2]}/ws", f"http://127.0.0.1:{ports[0]}")
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def _ready(port: int) -> bool:
    status, _, _ = await get_json(f"http://127.0.0.1:{port}/readyz")
    return status == 200


class JsonLines(logging.Handler):
    """Log lines as the services write them (JSON), kept for the test to read."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter("test"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


@pytest.fixture
def json_logs():
    handler = JsonLines()
    logger = logging.getLogger("tickwire")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _trace_of(spans: list[ReadableSpan], name: str, where: Callable[[ReadableSpan], bool]):
    roots = [s for s in spans if s.name == name and where(s)]
    return roots[0].context.trace_id if roots else None


async def test_one_trace_from_a_subscription_to_the_ticks_it_brings(in_process, exporter,
                                                                    json_logs):
    client = await WsClient.connect(in_process.edge_url)
    try:
        await client.next()
        await client.send({"action": "subscribe", "symbols": ["AAPL"]})
        await client.until(lambda m: m["type"] == "subscribed")
        live = [u for u in await client.updates("AAPL", 4, timeout=40) if not u.get("snapshot")]
        assert live

        async def whole_trace():
            spans = list(exporter.get_finished_spans())
            trace_id = _trace_of(spans, "edge subscribe",
                                 lambda s: "AAPL" in s.attributes["tickwire.symbols"])
            mine = [s for s in spans if s.context.trace_id == trace_id]
            return mine if {child for child, _ in CHAIN} <= {s.name for s in mine} else None

        spans = await eventually(whole_trace, timeout=30)
    finally:
        await client.close()

    by_name = {s.name: s for s in spans}
    for child, parent in CHAIN:
        assert by_name[child].parent is not None, child
        assert by_name[child].parent.span_id == by_name[parent].context.span_id, (child, parent)
    scopes = {s.instrumentation_scope.name for s in spans}
    assert {"tickwire.edge", "tickwire.registry", "tickwire.ingestor"} <= scopes
    assert by_name["tick fan-out"].attributes["tickwire.recipients"] == 1
    assert by_name["tick fan-out"].attributes["tickwire.symbol"] == "AAPL"
    assert by_name["provider fetch"].attributes["tickwire.provider"] == "simulated"
    assert by_name["provider fetch"].attributes["tickwire.outcome"] == "ok"
    assert by_name["poll round"].attributes["tickwire.first_fetch"] is True
    assert by_name[f"{ACTIVE} process"].attributes["tickwire.active"] is True

    # Ticks are sampled at their own ratio (0 here): the later ones left no spans.
    publishes = [s for s in exporter.get_finished_spans() if s.name == "tick publish"]
    assert len(publishes) == 1 and publishes[0].context.trace_id == spans[0].context.trace_id

    # Log lines written inside the flow carry its ids.
    trace_hex = f"{spans[0].context.trace_id:032x}"
    messages = {line["msg"] for line in json_logs.lines if line.get("trace_id") == trace_hex}
    assert {"symbols subscribed upstream", "symbol activity changed"} <= messages


# ---- across processes: OTLP/HTTP to a local receiver -----------------------------------


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    instance: str
    scope: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict


class OtlpReceiver:
    """`POST /v1/traces` with an ExportTraceServiceRequest (protobuf), as a collector takes
    it. It runs on its own thread and loop, so it keeps answering while the test's loop is
    blocked (fixture teardown stops the services synchronously, and they export once more
    as they stop)."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="otlp-receiver",
                                        daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        self.requests += 1
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(ReceivedSpan(
                        resource.get("service.name", ""), resource.get("service.instance.id", ""),
                        scope_spans.scope.name, span.name, span.trace_id.hex(),
                        span.span_id.hex(), span.parent_span_id.hex(),
                        _attributes(span.attributes)))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")


def _attributes(pairs) -> dict:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        value = getattr(pair.value, kind) if kind else None
        if kind == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        values[pair.key] = value
    return values


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


async def test_spans_of_all_three_services_arrive_over_otlp_http(receiver, stack):
    # (`receiver` first: it outlives the services, which export once more as they stop.)
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200",
            "TICKWIRE_TRACE_TICK_RATIO": "1"}
    stack.registry(**otel)
    stack.ingestor(**otel)
    edge = stack.edge("edge-1", **otel)

    client = await WsClient.connect(edge.ws_url)
    try:
        await client.next()
        await client.send({"action": "subscribe", "symbols": ["MSFT"]})
        await client.until(lambda m: m["type"] == "subscribed")
        await client.updates("MSFT", 3, timeout=40)

        async def subscription_trace():
            roots = [s for s in receiver.spans if s.name == "edge subscribe"
                     and "MSFT" in s.attributes.get("tickwire.symbols", [])]
            if not roots:
                return None
            mine = [s for s in receiver.spans if s.trace_id == roots[0].trace_id]
            # Each service exports on its own schedule: wait for all three, not the first.
            complete = "tick fan-out" in {s.name for s in mine} and \
                {s.service for s in mine} >= {"tickwire-edge", "tickwire-registry",
                                              "tickwire-ingestor"}
            return mine if complete else None

        flow = await eventually(subscription_trace, timeout=30)
    finally:
        await client.close()

    assert {s.service for s in flow} == {"tickwire-edge", "tickwire-registry", "tickwire-ingestor"}
    assert {s.instance for s in flow if s.service == "tickwire-edge"} == {"edge-1"}
    # With ticks sampled at ratio 1, every fan-out on the edge is a child of a publish on
    # the ingestor, carried through Redis inside the tick.
    # (Ticks come faster than the exporters' batches: wait for a second fan-out to arrive.)
    async def fan_outs_seen():
        found = [s for s in receiver.spans if s.name == "tick fan-out"]
        return found if len(found) >= 2 else None

    fan_outs = await eventually(fan_outs_seen, timeout=30)
    spans = {s.span_id: s for s in receiver.spans}
    for span in fan_outs:
        parent = spans.get(span.parent_id)
        if parent is not None:  # an export batch may still be on its way
            assert (parent.name, parent.service) == ("tick publish", "tickwire-ingestor")
    assert any(spans.get(s.parent_id) for s in fan_outs)
    assert receiver.requests >= 3
