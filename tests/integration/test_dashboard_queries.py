"""Debian's Prometheus scraping a running stack (registry, ingestor, two edges, HAProxy), labelled
as deploy/compose/prometheus.yml labels it: every query of every Grafana dashboard panel
(deploy/compose/grafana/dashboards/*.json) returns data once clients have used the stack."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest
import yaml

from tickwire.localstack import ManagedProcess, free_port
from tickwire.localstack.process import http_ok

from integration.ingestor_fakes import FakeApi, fake_apis, provider_env  # noqa: F401 (fixture)
from integration.wsclient import WsClient, eventually

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "deploy" / "compose" / "grafana" / "dashboards").glob("*.json"))
SCRAPE = "1s"
# Grafana's $__rate_interval is at least four scrape intervals.
RATE_INTERVAL = "15s"


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard: panel title, PromQL) of every target, rows' nested panels included."""
    found = []

    def walk(dashboard: str, panels: list[dict]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((f"{dashboard}: {panel.get('title')}", target["expr"]))
            walk(dashboard, panel.get("panels", []))

    for path in DASHBOARDS:
        walk(path.stem, json.loads(path.read_text())["panels"])
    return found


@pytest.fixture
def prometheus(tmp_path: Path):
    """Returns start(targets by tickwire_service) -> base URL; stops it by its PID."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: apt-get install prometheus "
                    "(deploy/local/install.sh --test does)", pytrace=False)
    started: list[ManagedProcess] = []

    def start(targets: dict[str, list[int]]) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE},
            "scrape_configs": [
                {"job_name": service, "static_configs": [{
                    "targets": [f"127.0.0.1:{port}" for port in ports],
                    "labels": {"tickwire_service": service}}]}
                for service, ports in targets.items()],
        }))
        port = free_port()
        process = ManagedProcess("prometheus", [
            binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            tmp_path / "prometheus.log").start()
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        process.wait_until(lambda: http_ok(f"{url}/-/ready"), 60, f"ready at {url}")
        return url

    yield start
    for process in started:
        process.stop()


async def query(session: aiohttp.ClientSession, base: str, expr: str) -> list:
    async with session.get(f"{base}/api/v1/query",
                           params={"query": expr.replace("$__rate_interval", RATE_INTERVAL)}) as r:
        body = await r.json()
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


async def keep_reading(client: WsClient) -> None:
    """Reads (and so answers the edge's pings) until the socket ends."""
    while not client.ws.closed:
        frame = await client.ws.receive()
        if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                          aiohttp.WSMsgType.ERROR):
            return


async def use_the_stack(lb: str, edge_urls: list[str]) -> tuple[list[WsClient], list[asyncio.Task]]:
    """What a dashboard watches: subscribed clients receiving ticks, an invalid message, a
    refused Origin, a reconnect, and a client that never reads (closed for missed pings)."""
    clients = []
    for url in (lb, *edge_urls):
        client = await WsClient.connect(url)
        await client.send({"action": "subscribe", "symbols": ["AAPL", "MSFT"]})
        await client.updates("AAPL", 1, timeout=40)
        await client.send({"action": "no-such-action"})
        await client.until(lambda m: m.get("type") == "error")
        clients.append(client)
    for url in edge_urls:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await WsClient.connect(url, origin="https://not-allowed.example")
        again = await WsClient.connect(url)  # the same address moments later: a reconnect
        await again.close()
        clients.append(await WsClient.connect(url, autoping=False))  # never reads
    readers = [asyncio.create_task(keep_reading(client)) for client in clients[:len(edge_urls) + 1]]
    return clients, readers


async def test_every_dashboard_panel_query_returns_data(stack, prometheus, fake_apis):
    assert DASHBOARDS, "no Grafana dashboards found"
    # A keyed provider (a local server speaking Twelve Data) with a per-minute budget, so the
    # provider panels have a budget to show.
    api = FakeApi().start()
    fake_apis.append(api)
    registry = stack.registry()
    ingestor = stack.ingestor(**provider_env(api, providers="twelvedata",
                                             TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_MINUTE=6000))
    edges = [stack.edge(f"edge-{n}", TICKWIRE_EDGE_ALLOWED_ORIGINS="http://127.0.0.1",
                        TICKWIRE_EDGE_HEARTBEAT_INTERVAL="1")
             for n in (1, 2)]
    lb = stack.haproxy()
    base = prometheus({"registry": [registry.port], "ingestor": [ingestor.port],
                       "ws-edge": [e.port for e in edges]})
    clients, readers = await use_the_stack(lb.ws_url, [e.ws_url for e in edges])
    queries = panel_queries()
    try:
        async with aiohttp.ClientSession() as session:
            empty: list[str] = []

            async def all_answer() -> bool:
                empty[:] = [f"{where}: {expr}" for where, expr in queries
                            if not await query(session, base, expr)]
                return not empty

            try:
                await eventually(all_answer, timeout=90, interval=1)
            except TimeoutError:
                pytest.fail("panel queries without data:\n" + "\n".join(empty))
    finally:
        await asyncio.gather(*(client.close() for client in clients))
        await asyncio.wait_for(asyncio.gather(*readers), timeout=10)
