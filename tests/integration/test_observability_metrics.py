"""Every metric the Grafana dashboard and the Prometheus alert rules read is exported by a
running stack (no panel points at nothing), and the operator's metrics move with traffic."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy.support import metric_names_in

from integration.wsclient import WsClient, eventually

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "deploy/compose/grafana/dashboards").glob("*.json"))
ALERT_RULES = [REPO / "deploy/compose/alerts.yml"]
ADDED_BY_PROMETHEUS = {"up"}


def queried_metrics() -> dict[str, set[str]]:
    """metric name → where it is used (panel titles and alert names)."""
    used: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                for name in metric_names_in(target["expr"]):
                    used.setdefault(name, set()).add(f"panel {panel['title']!r}")
    for path in ALERT_RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for name in metric_names_in(rule["expr"]):
                    used.setdefault(name, set()).add(f"alert {rule['alert']}")
    return used


class Scrape:
    """One /metrics answer: the series names it exports and its samples."""

    def __init__(self, text: str):
        self.names: set[str] = set()
        self.samples: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(text):
            # A labelled family with no child yet still exports its name (HELP/TYPE).
            self.names.add(family.name)
            if family.type == "counter":
                self.names.add(f"{family.name}_total")
            elif family.type == "histogram":
                self.names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
            for sample in family.samples:
                self.names.add(sample.name)
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def total(self, name: str) -> float:
        return sum(v for (n, _), v in self.samples.items() if n == name)


async def scrape(url: str) -> Scrape:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/metrics") as response:
            assert response.status == 200
            return Scrape(await response.text())


async def _no_websocket(url: str) -> bool:
    return (await scrape(url)).value("tickwire_edge_connections", kind="websocket") == 0


async def test_every_metric_of_the_dashboard_and_alerts_is_exported(stack):
    registry = stack.registry()
    ingestor = stack.ingestor()
    edge = stack.edge("edge-1")

    client = await WsClient.connect(edge.ws_url)
    try:
        await client.next()
        await client.send({"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
        await client.until(lambda m: m["type"] == "subscribed")
        await client.updates("AAPL", 3, timeout=40)
        await client.send({"action": "dance"})
        await client.until(lambda m: m["type"] == "error")
        # The same address again, moments after its socket closed: a reconnection.
        await client.close()
        await eventually(lambda: _no_websocket(edge.url), timeout=10)
        client = await WsClient.connect(edge.ws_url)
        await client.next()
        await client.send({"action": "subscribe", "symbols": ["AAPL"]})
        await client.until(lambda m: m["type"] == "subscribed")
        await client.updates("AAPL", 2, timeout=40)

        async def edge_saw_latency():
            found = await scrape(edge.url)
            return found if found.total("tickwire_edge_tick_latency_seconds_count") > 0 else None

        edge_metrics = await eventually(edge_saw_latency, timeout=20)
        ingestor_metrics = await scrape(ingestor.url)
        registry_metrics = await scrape(registry.url)
    finally:
        await client.close()

    exported = edge_metrics.names | ingestor_metrics.names | registry_metrics.names
    used = queried_metrics()
    assert len(used) > 20, "found too few metric names in the dashboard and alert files"
    missing = {name: sorted(where) for name, where in used.items()
               if name not in exported and name not in ADDED_BY_PROMETHEUS}
    assert not missing, f"queried but not exported by any service: {missing}"

    # Process metrics come from every service (memory, CPU and fd panels and alerts).
    for scraped in (edge_metrics, ingestor_metrics, registry_metrics):
        for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                     "process_open_fds"):
            assert scraped.total(name) > 0, name

    # The metrics move with the traffic above.
    assert edge_metrics.value("tickwire_edge_symbol_subscribers", symbol="AAPL") == 1
    assert edge_metrics.value("tickwire_edge_subscriptions") >= 1
    assert edge_metrics.value("tickwire_edge_reconnections_total") >= 1
    assert edge_metrics.value("tickwire_edge_errors_total", code="UNSUPPORTED_ACTION") == 1
    assert edge_metrics.value("tickwire_edge_connections_opened_total") == 2
    assert edge_metrics.total("tickwire_edge_messages_sent_total") > 0
    assert ingestor_metrics.total("tickwire_ingestor_ingest_latency_seconds_count") > 0
    assert ingestor_metrics.value("tickwire_ingestor_provider_requests_total",
                                  provider="simulated", outcome="ok") > 0
    assert ingestor_metrics.value("tickwire_ingestor_circuit_state", provider="simulated") == 0
    assert any(n == "tickwire_ingestor_kafka_consumer_lag" for n, _ in ingestor_metrics.samples)
    assert any(n == "tickwire_registry_consumer_lag" for n, _ in registry_metrics.samples)
    assert registry_metrics.value("tickwire_registry_events_total", type="subscribe") >= 1
