"""The packages as a user installs them, outside the workspace, against the real stack.

- @tickwire/client: `npm pack`, installed into a fresh Vite + React app from the npm
  registry (npm's own cache in ~/.npm keeps repeat runs fast), built with the seed's
  VITE_* settings, served by `vite preview` (which proxies /ws and /api to the stack, as
  an app's own server would), and watched in Chromium: a live price, then the indicator
  going Live → Reconnecting → Delayed → Live as a WsBlocker takes the socket away.
- tickwire-client: its wheel built by `uv build`, installed into a fresh venv with only
  its declared dependencies, and `tickwire quote` / `tickwire watch` run from there.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from tickwire.localstack import free_port

from integration.cliproc import run
from integration.wsblocker import WsBlocker
from integration.wsclient import eventually

ROOT = Path(__file__).resolve().parents[2]
WEB_CLIENT = ROOT / "libs/web-client"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PRICE = re.compile(r"^\d+\.\d{2}$")
APP_DEPENDENCIES = ("react@19", "react-dom@19", "vite@7")

MAIN_TSX = """\
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { clientOptionsFromViteEnv, configureWebSocketService, ConnectionStatusIndicator,
         useConnectionStatus, useRealTimeStock } from "@tickwire/client";

const { service, hook } = clientOptionsFromViteEnv(import.meta.env);
configureWebSocketService({ ...service, maxReconnectAttempts: 3, pollingInterval: 1000 }).connect();

function Price({ symbol }: { symbol: string }) {
  const { data } = useRealTimeStock({ symbol, ...hook, pollingInterval: 1000 });
  return <p>{symbol} <span data-testid={`price-${symbol}`}>{data ? data.price.toFixed(2) : "…"}</span></p>;
}

function App() {
  const connection = useConnectionStatus();
  return <><ConnectionStatusIndicator {...connection} showDetails /><Price symbol="AAPL" /></>;
}

createRoot(document.getElementById("root")!).render(<StrictMode><App /></StrictMode>);
"""

VITE_CONFIG = """\
import { defineConfig } from "vite";

const upstream = process.env.TICKWIRE_UPSTREAM;
export default defineConfig({
  esbuild: { jsx: "automatic" },
  preview: {
    host: "127.0.0.1",
    strictPort: true,
    proxy: { "/ws": { target: upstream, ws: true }, "/api": { target: upstream } },
  },
});
"""


def _npm(*args: str, cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"npm {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    """`npm pack` of libs/web-client (its prepack builds dist/)."""
    if not (WEB_CLIENT / "node_modules").is_dir():
        pytest.fail("the web client's dependencies are missing: run libs/web-client/build.sh")
    out = tmp_path / "pack"
    out.mkdir()
    listing = json.loads(_npm("pack", "--json", "--pack-destination", str(out), cwd=WEB_CLIENT))
    files = {f["path"] for f in listing[0]["files"]}
    assert {"dist/index.js", "dist/index.d.ts", "package.json", "README.md"} <= files
    assert not any(f.startswith(("src/", "test/", "dashboard/")) for f in files)
    return out / listing[0]["filename"]


def _make_app(app: Path, tarball: Path, ws_url: str) -> None:
    (app / "src").mkdir(parents=True)
    (app / "package.json").write_text(json.dumps({"name": "quotes-app", "private": True,
                                                  "type": "module"}))
    (app / "index.html").write_text('<!doctype html><html><body><div id="root"></div>'
                                    '<script type="module" src="/src/main.tsx"></script>'
                                    '</body></html>')
    (app / "src/main.tsx").write_text(MAIN_TSX)
    (app / "vite.config.js").write_text(VITE_CONFIG)
    (app / ".env").write_text(f"VITE_WS_URL={ws_url}\nVITE_ENABLE_WEBSOCKET=true\n"
                              "VITE_FALLBACK_TO_POLLING=true\nVITE_WS_RECONNECT_INTERVAL=200\n")
    _npm("install", "--prefer-offline", *APP_DEPENDENCIES, str(tarball), cwd=app, timeout=180)
    types = app / "node_modules/@tickwire/client/dist/index.d.ts"
    assert "clientOptionsFromViteEnv" in types.read_text()
    built = subprocess.run([str(app / "node_modules/.bin/vite"), "build"], cwd=app,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (app / "dist/index.html").is_file()


async def test_web_client_tarball_in_a_fresh_vite_react_app(stack, tarball, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium")
    lb = stack.full()
    blocker = await WsBlocker(lb.port).start()
    port = free_port()
    app = tmp_path / "app"
    _make_app(app, tarball, f"ws://127.0.0.1:{port}/ws")
    preview = await asyncio.create_subprocess_exec(
        str(app / "node_modules/.bin/vite"), "preview", "--port", str(port), cwd=app,
        env={"PATH": "/usr/bin:/bin", "TICKWIRE_UPSTREAM": blocker.url},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await eventually(lambda: _answers(f"http://127.0.0.1:{port}/"), timeout=30)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/")
                status = page.get_by_test_id("connection-status")
                price = page.get_by_test_id("price-AAPL")

                await expect(status).to_have_attribute("data-state", "live", timeout=30_000)
                await expect(price).to_have_text(PRICE, timeout=30_000)
                first = await price.inner_text()
                await expect(price).not_to_have_text(first, timeout=30_000)

                blocker.block(hang=True)
                await expect(status).to_have_attribute("data-state", "reconnecting",
                                                       timeout=15_000)
                blocker.block()
                await expect(status).to_have_attribute("data-state", "delayed", timeout=30_000)
                polled = await price.inner_text()
                await expect(price).not_to_have_text(polled, timeout=30_000)  # polls move it

                blocker.unblock()
                await expect(status).to_have_attribute("data-state", "live", timeout=40_000)
                await expect(price).to_have_text(PRICE)
            finally:
                await browser.close()
    finally:
        if preview.returncode is None:
            preview.terminate()
            try:
                await asyncio.wait_for(preview.wait(), 10)
            except TimeoutError:
                preview.kill()
                await preview.wait()
        await blocker.stop()


async def _answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


def test_python_wheel_declares_what_it_needs(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    requires = {line.split()[1].split(">")[0].lower()
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    assert requires == {"aiohttp", "msgpack", "orjson", "rich"}  # no workspace package
    assert b"tickwire = tickwire.client.cli:main" in entry_points
    assert "tickwire/client/cli/watch.py" in names
    assert not any(n.startswith(("tickwire/core/", "tickwire/edge/")) for n in names)


async def test_python_wheel_in_a_fresh_venv_quotes_and_watches(stack, tmp_path):
    wheel = _build_wheel(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin/python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q",
                                "--disable-pip-version-check", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    tickwire = str(env_dir / "bin/tickwire")

    lb = stack.full()
    watch = await run("--url", lb.url, "watch", "MSFT", "--count", "3", "--json",
                      program=tickwire)
    assert watch.code == 0, watch.err
    updates = [json.loads(line) for line in watch.out.splitlines() if '"symbol"' in line]
    assert len(updates) == 3 and all(u["symbol"] == "MSFT" and u["price"] > 0 for u in updates)

    quote = await run("--url", lb.url, "quote", "MSFT", "--json", program=tickwire)
    assert quote.code == 0, quote.err
    assert quote.json()["symbol"] == "MSFT"
    imported = subprocess.run([str(python), "-c", "import tickwire.core"], capture_output=True)
    assert imported.returncode != 0  # the wheel stands alone: no workspace package came along


def _build_wheel(tmp_path: Path) -> Path:
    out = tmp_path / "wheel"
    uv = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    built = subprocess.run([uv, "build", "--wheel", "--out-dir", str(out),
                            str(ROOT / "libs/client-py")],
                           capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = out.glob("tickwire_client-*.whl")
    return wheel
