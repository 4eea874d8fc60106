"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) through HAProxy.

The page is loaded through a WsBlocker in front of HAProxy, so the test can take the
page's WebSocket away while its HTTP (the REST fallback) keeps working. Screenshots of
each state go to test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from integration.wsblocker import WsBlocker

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
BUNDLE = ROOT / "services/ws-edge/src/tickwire/edge/static/dashboard/index.html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PRICE = re.compile(r"^\d+\.\d{2,4}$")


@pytest.fixture
def prerequisites() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium")
    if not BUNDLE.is_file():
        pytest.fail("the dashboard is not built: run libs/web-client/build.sh")


async def price(page: Page, symbol: str) -> str:
    return (await page.get_by_test_id(f"quote-{symbol}").inner_text()).strip()


async def expect_price_change(page: Page, symbol: str, timeout_ms: float = 30_000) -> None:
    """The price cell shows a price, then a different one (bounded wait)."""
    cell = page.get_by_test_id(f"quote-{symbol}")
    await expect(cell).to_have_text(PRICE, timeout=timeout_ms)
    first = await price(page, symbol)
    await expect(cell).not_to_have_text(first, timeout=timeout_ms)
    await expect(cell).to_have_text(PRICE, timeout=timeout_ms)


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


async def test_dashboard_goes_live_reconnecting_delayed_and_live_again(stack, prerequisites):
    lb = stack.full()
    blocker = await WsBlocker(lb.port).start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 720})
                await page.goto(f"{blocker.url}/?symbols=AAPL,NVDA&reconnectInterval=200"
                                "&maxReconnectAttempts=3&pollingInterval=1000")
                status = page.get_by_test_id("connection-status")

                # Live: the socket is up and prices move.
                await expect(status).to_have_attribute("data-state", "live", timeout=30_000)
                await page.get_by_test_id("symbol-input").fill("msft")
                await page.get_by_test_id("add-symbol").click()
                await expect_price_change(page, "AAPL")
                await expect_price_change(page, "MSFT")
                await expect(page.get_by_test_id("latency")).to_have_text(re.compile(r"\d+ ms"),
                                                                          timeout=30_000)
                await status.hover()
                await expect(page.get_by_test_id("connection-details")).to_contain_text("Latency")
                await shot(page, "1-live")

                # The network swallows the socket and every new attempt: Reconnecting.
                blocker.block(hang=True)
                await expect(status).to_have_attribute("data-state", "reconnecting",
                                                       timeout=15_000)
                await shot(page, "2-reconnecting")

                # Upgrades now fail fast: after 3 attempts the page polls REST: Delayed,
                # and prices keep changing (REST reads keep the symbols active upstream).
                blocker.block()
                await expect(status).to_have_attribute("data-state", "delayed", timeout=30_000)
                await expect_price_change(page, "AAPL")
                await expect(status).to_have_attribute("data-state", "delayed")
                await shot(page, "3-delayed")

                # The socket works again: the background retries bring the page back to Live.
                blocker.unblock()
                await expect(status).to_have_attribute("data-state", "live", timeout=30_000)
                await expect_price_change(page, "MSFT")
                await shot(page, "4-live-again")
                assert blocker.refused >= 3
            finally:
                await browser.close()
    finally:
        await blocker.stop()


async def test_dashboard_says_why_the_edge_refused_a_symbol(stack, prerequisites):
    edge = stack.edge("edge-1", TICKWIRE_EDGE_MAX_SYMBOLS="2")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            await page.goto(f"{edge.url}/?symbols=AAPL,NVDA")
            await expect(page.get_by_test_id("connection-status")).to_have_attribute(
                "data-state", "live", timeout=30_000)
            await page.get_by_test_id("symbol-input").fill("msft")
            await page.get_by_test_id("add-symbol").click()
            await expect(page.get_by_test_id("symbol-problem")).to_have_text(
                "MSFT refused: over your symbol limit (SUBSCRIPTION_LIMIT_EXCEEDED)",
                timeout=15_000)
            await expect(page.get_by_test_id("quote-MSFT")).to_have_count(0)
            await shot(page, "5-refused")
        finally:
            await browser.close()
