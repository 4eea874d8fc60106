"""The local Finnhub stream for trying the provider path with `make run` (bench/fakefinnhub.py):
it speaks Finnhub's protocol as the ingestor's client expects it: trades of the subscribed
symbols only, the symbol-limit error, an error for what is not a command, a refused token
answered 401."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tickwire.localstack import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.fakefinnhub", "--port", str(port), "--symbol-limit", "2",
         "--trades-per-second", "50", "--refuse-token", "bad"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout.readline().startswith("fake Finnhub stream on ws://")
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict:
    async with asyncio.timeout(10):
        while True:
            message = json.loads((await ws.receive()).data)
            if message["type"] == kind:
                return message


async def test_trades_of_the_subscribed_symbols_and_the_symbol_limit(fake):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{fake}?token=anything") as ws:
            for symbol in ("AAPL", "MSFT", "TSLA"):
                await ws.send_json({"type": "subscribe", "symbol": symbol})
            error = await next_of(ws, "error")
            assert error["msg"] == "Subscribing to too many symbols"
            trades = (await next_of(ws, "trade"))["data"]
            assert {t["s"] for t in trades} <= {"AAPL", "MSFT"}
            assert all(t["p"] > 0 and t["v"] > 0 and t["t"] > 0 for t in trades)
            await ws.send_json({"type": "unsubscribe", "symbol": "AAPL"})
            await ws.send_str("not json")
            assert (await next_of(ws, "error"))["msg"] == "Unknown message type"
            # Once the unsubscribe is through, only MSFT trades.
            assert {t["s"] for t in (await next_of(ws, "trade"))["data"]} == {"MSFT"}


async def test_a_refused_token_is_answered_401(fake):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{fake}?token=bad")
        assert refused.value.status == 401
