"""Helpers for tests that break things on purpose.

A test that kills Redis or Kafka gets servers of its own (`DedicatedRedis`,
`DedicatedKafka`) and a stack launched against them (`own_stack`), so the session-wide
servers every other test uses are never touched. Everything here is stopped by its own PID.
Also: reading a process's memory and descriptors from /proc, Prometheus samples, and a
fake Twelve Data API that can be told to fail.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from tickwire.localstack import (ManagedProcess, ServiceLauncher, free_port, start_haproxy,
                                 start_kafka, start_redis)
from tickwire.localstack.process import port_open

from integration.stack import Stack
from integration.threaded import ThreadedApp
from integration.wsclient import WsClient, subscribed  # noqa: F401 (re-exported for the fault tests)

# -- servers of a test's own --------------------------------------------------------------


class DedicatedRedis:
    """A Redis on a free port. Without persistence: a restart comes back empty, as a
    crashed cache node would."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process = start_redis(self.port, workdir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.process.kill()

    def restart(self) -> None:
        self.process.kill()
        self.start()

    def start(self) -> None:
        """Start it again (after `kill`), on the same port, empty."""
        self.process = start_redis(self.port, self.workdir)

    def stop(self) -> None:
        self.process.stop()


class DedicatedKafka:
    """A single-node KRaft cluster on free ports. `restart` runs the same broker on the
    same data (no re-format), so topics, offsets and groups survive a kill."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.process = start_kafka(self.port, free_port(), workdir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.process.kill()

    def restart(self, timeout: float = 90) -> None:
        self.process.kill()
        log = self.process.log_path
        started_before = log.read_text(errors="replace").count("Kafka Server started")
        self.process = ManagedProcess("kafka", self.process.argv, log).start()
        self.process.wait_until(
            lambda: log.read_text(errors="replace").count("Kafka Server started") > started_before
            and port_open(self.port), timeout, f"restarted on {self.port}")

    def stop(self) -> None:
        self.process.stop()


@contextmanager
def own_stack(redis_url: str, kafka_bootstrap: str, workdir: Path) -> Iterator[Stack]:
    """A Stack whose services use the given servers; every process it started is stopped
    (newest first) on the way out."""
    launcher = ServiceLauncher(redis_url, kafka_bootstrap, workdir / "logs",
                               env={"TICKWIRE_LOG_FORMAT": "text"})
    started: list[ManagedProcess] = []
    try:
        yield Stack(launcher, started, workdir, start_haproxy)
    finally:
        for process in reversed(started):
            process.stop()


async def start(factory, *args, **kwargs):
    """Run a blocking Stack start (it waits for /readyz) without stalling the test's loop."""
    return await asyncio.to_thread(factory, *args, **kwargs)


# -- what a process holds -----------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident set size from /proc, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def alive(*processes: ManagedProcess) -> list[str]:
    """Names of the processes that have exited (empty when all run)."""
    return [p.name for p in processes if not p.alive()]


# -- Prometheus ---------------------------------------------------------------------------


async def metric(url: str, name: str, labels: str = "") -> float:
    """Sum of the samples `name{labels}` on `url`/metrics (0 when absent). `labels` is the
    exact label text as exposed, e.g. '{reason="slow consumer"}'."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/metrics") as response:
            text = await response.text()
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)}\s+([0-9.e+-]+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


# -- clients ------------------------------------------------------------------------------


def updates_in(message: dict) -> list[dict]:
    """The per-symbol updates a server message carries (price_update or batch_update)."""
    if message.get("type") == "price_update":
        return [message]
    if message.get("type") == "batch_update":
        return message["updates"]
    return []


# -- a quote provider that fails on demand ------------------------------------------------


class FlakyTwelveData:
    """Twelve Data's `/quote` in its real response format, from a thread of its own so it
    answers while the test blocks. `failing = True` makes it answer HTTP 503."""

    def __init__(self) -> None:
        self._server = ThreadedApp(self._app)
        self.port, self.url = self._server.port, self._server.url
        self.failing = False
        self.requests = 0
        self._ticks = 0

    def start(self) -> FlakyTwelveData:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/quote", self._quote)
        return app

    def _entry(self, symbol: str) -> dict:
        self._ticks += 1
        price = round(100.0 + 0.01 * self._ticks, 2)
        return {"symbol": symbol, "name": f"{symbol} Corp", "exchange": "NASDAQ",
                "mic_code": "XNGS", "currency": "USD", "datetime": time.strftime("%Y-%m-%d"),
                "timestamp": int(time.time()), "open": "99.50", "high": f"{max(price, 101):.2f}",
                "low": "99.00", "close": f"{price:.2f}", "volume": "7654321",
                "previous_close": "99.80", "change": f"{price - 99.8:.2f}",
                "percent_change": f"{(price - 99.8) / 0.998:.5f}", "average_volume": "6000000",
                "is_market_open": True, "fifty_two_week": {"low": "80.00", "high": "120.00"}}

    async def _quote(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.failing:
            return web.Response(status=503, text="upstream unavailable")
        symbols = request.query["symbol"].split(",")
        if len(symbols) == 1:
            return web.json_response(self._entry(symbols[0]))
        return web.json_response({s: self._entry(s) for s in symbols})

    def env(self) -> dict[str, str]:
        """Ingestor settings: this fake as the only provider, no rate budgets."""
        return {
            "TICKWIRE_INGESTOR_PROVIDERS": "twelvedata",
            "TICKWIRE_INGESTOR_TWELVEDATA_BASE_URL": self.url,
            "TICKWIRE_INGESTOR_TWELVEDATA_API_KEY": "test-key",
            "TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_MINUTE": "0",
            "TICKWIRE_INGESTOR_TWELVEDATA_CREDITS_PER_DAY": "0",
            "TICKWIRE_INGESTOR_REQUEST_TIMEOUT_SECONDS": "1",
            "TICKWIRE_INGESTOR_RETRY_ATTEMPTS": "1",
        }


@asynccontextmanager
async def flaky_twelvedata() -> AsyncIterator[FlakyTwelveData]:
    api = FlakyTwelveData().start()
    try:
        yield api
    finally:
        await asyncio.to_thread(api.stop)


@asynccontextmanager
async def client_pool() -> AsyncIterator[list[WsClient]]:
    """A list to put WsClients in; all are closed on the way out (before the stack stops,
    when nested inside `own_stack`, so no edge waits out a drain for them)."""
    clients: list[WsClient] = []
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()
