"""The WebSocket rollout (issue #17): `GET /api/config` on every edge, and clients that poll
outside the rollout and stream inside it — the Python SDK, and the dashboard in Chromium."""

from __future__ import annotations

import re

from playwright.async_api import async_playwright, expect

from tickwire.client import ClientConfig, ConnectionStatus, TickwireClient

from integration.ingestor_fakes import metric
from integration.test_client_py import take
from integration.test_dashboard import CHROMIUM, PRICE, prerequisites, shot  # noqa: F401
from integration.wsclient import get_json


def rollout_stack(stack):
    """registry, ingestor, and two edges: one rolls the WebSocket out to nobody, one to all."""
    stack.registry()
    stack.ingestor()
    closed = stack.edge("edge-r0", TICKWIRE_EDGE_WEBSOCKET_ROLLOUT_PERCENT="0",
                        TICKWIRE_EDGE_CLIENT_POLLING_INTERVAL_MS="700")
    opened = stack.edge("edge-r100")
    return closed, opened


async def websockets_opened(edge) -> float:
    return await metric(edge, "tickwire_edge_connections_opened_total") or 0.0


async def test_api_config_and_the_sdk_polls_outside_the_rollout_and_streams_inside(stack):
    closed, opened = rollout_stack(stack)
    status, body, headers = await get_json(f"{closed.url}/api/config")
    assert status == 200 and headers["cache-control"] == "no-cache"
    assert body == {"websocketEnabled": True, "websocketRolloutPercent": 0,
                    "rolloutBucketing": "fnv1a32-mod100", "pollingIntervalMs": 700,
                    "reconnectIntervalMs": 1000, "maxReconnectAttempts": 10,
                    "heartbeatIntervalMs": 30000}
    _, body, _ = await get_json(f"{opened.url}/api/config")
    assert body["websocketRolloutPercent"] == 100 and body["pollingIntervalMs"] == 30000

    poller = TickwireClient(ClientConfig(url=closed.ws_url, polling_interval=0.5,
                                         client_id="rollout-test"))
    updates = poller.updates()
    await poller.connect()
    try:
        assert poller.transport.mode == "polling" and poller.transport.label == \
            "polling (rollout 0 %)"
        await poller.subscribe(["AAPL"])
        polled = await take(updates, lambda u: u.symbol == "AAPL", 2)
        assert not any(u.real_time for u in polled)
        assert poller.status is ConnectionStatus.DELAYED and not poller.is_real_time
    finally:
        await poller.disconnect()
    assert await websockets_opened(closed) == 0

    streamer = TickwireClient(ClientConfig(url=opened.ws_url, client_id="rollout-test"))
    updates = streamer.updates()
    await streamer.connect()
    try:
        assert streamer.transport.mode == "websocket"
        assert streamer.transport.reason == "in-rollout"
        await streamer.subscribe(["AAPL"])
        live = await take(updates, lambda u: u.symbol == "AAPL" and u.real_time, 2)
        assert all(u.real_time for u in live)
        assert streamer.status is ConnectionStatus.LIVE
    finally:
        await streamer.disconnect()
    assert await websockets_opened(opened) >= 1


async def test_the_dashboard_says_it_polls_outside_the_rollout_and_streams_inside(
        stack, prerequisites):  # noqa: F811
    closed, opened = rollout_stack(stack)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            for edge, label, reason, state in (
                    (closed, "polling (rollout 0 %)", "rollout", "delayed"),
                    (opened, "websocket (rollout 100 %)", "in-rollout", "live")):
                page = await browser.new_page(viewport={"width": 1280, "height": 720})
                await page.goto(f"{edge.url}/?symbols=AAPL")
                mode = page.get_by_test_id("transport-mode")
                await expect(mode).to_have_text(label, timeout=30_000)
                await expect(mode).to_have_attribute("data-reason", reason)
                await expect(page.get_by_test_id("connection-status")).to_have_attribute(
                    "data-state", state, timeout=30_000)
                await expect(page.get_by_test_id("quote-AAPL")).to_have_text(PRICE,
                                                                            timeout=30_000)
                await shot(page, f"rollout-{state}")
            assert await websockets_opened(closed) == 0
            assert await websockets_opened(opened) >= 1
            assert re.fullmatch(r"[0-9a-f-]{36}", await page.evaluate(
                "localStorage.getItem('tickwire.clientId')"))
        finally:
            await browser.close()
