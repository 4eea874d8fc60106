"""A burst of 5,000 WebSocket upgrade attempts from one address, against the default
admission limits: the excess is refused cleanly before the upgrade (429 for the rate,
503 for the per-address cap, each with a JSON error and Retry-After), nothing is reset or
left hanging, another address is served meanwhile, and the edge stays ready."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import aiohttp

from integration.faults import open_fds, rss_mb
from integration.wsclient import eventually, get_json

ATTEMPTS = 5000
CONCURRENCY = 200
BURST, RATE = 100, 50.0   # connection_burst_per_ip, connections_per_second_per_ip defaults


class Outcome:
    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.failures: list[str] = []
        self.refusals: list[tuple[int, dict, dict]] = []
        self.held: list[asyncio.StreamWriter] = []


async def _attempt(port: int, outcome: Outcome, gate: asyncio.Semaphore) -> None:
    async with gate:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            outcome.failures.append(repr(exc))
            return
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
        if status == 101:
            outcome.held.append(writer)  # keep it: held connections count against the cap
            return
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:]
                                                         if line)}
        try:
            length = int(headers.get("content-length", "0"))
            body = json.loads(await asyncio.wait_for(reader.readexactly(length), 5))
        except (ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            outcome.failures.append(f"{status} with an unreadable body: {exc!r}")
            body = {}
        if len(outcome.refusals) < 50:
            outcome.refusals.append((status, headers, body))
        writer.close()


async def _ws_from(address: str, url: str) -> str:
    """Open a WebSocket from another loopback address; returns its first message type."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.ws_connect(url) as ws:
            return json.loads((await ws.receive(timeout=10)).data)["type"]


async def _refusing(outcome: Outcome) -> bool:
    return outcome.statuses.get(429, 0) > 0


async def _admitted(address: str, url: str) -> bool:
    try:
        return await _ws_from(address, url) == "connected"
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 429, refused
        return False


async def test_a_burst_of_5000_connection_attempts_is_refused_cleanly_before_the_upgrade(stack):
    edge = stack.edge("edge-b1")
    pid = edge.process.pid
    rss_before, fds_before = rss_mb(pid), open_fds(pid)
    outcome = Outcome()
    gate = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()
    burst = asyncio.gather(*(_attempt(edge.port, outcome, gate) for _ in range(ATTEMPTS)))
    # Meanwhile (the edge already refusing) it answers its probes and admits someone at
    # another address.
    await eventually(lambda: _refusing(outcome), timeout=30)
    ready_during = (await get_json(f"{edge.url}/readyz"))[0]
    other_during = await _ws_from("127.0.0.2", edge.ws_url)
    await burst
    elapsed = time.monotonic() - started
    rss_peak, fds_peak = rss_mb(pid), open_fds(pid)
    for writer in outcome.held:
        writer.close()

    assert outcome.failures == []
    assert set(outcome.statuses) <= {101, 429, 503}, outcome.statuses
    assert sum(outcome.statuses.values()) == ATTEMPTS
    accepted = outcome.statuses.get(101, 0)
    assert BURST <= accepted <= BURST + RATE * elapsed + 10, (accepted, elapsed)
    assert outcome.statuses.get(429, 0) > 0
    for status, headers, body in outcome.refusals:
        assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED", body
        assert headers.get("retry-after") == "1" and headers.get("x-tickwire-edge") == "edge-b1"
    assert ready_during == 200 and other_during == "connected"
    assert edge.process.alive()
    assert (await get_json(f"{edge.url}/readyz"))[0] == 200
    # Once the address's bucket refills, it may connect again (a client heeding Retry-After).
    assert await eventually(lambda: _admitted("127.0.0.1", edge.ws_url), timeout=15)
    # Every accepted socket, once its client left, is released.
    fds_after = await eventually(lambda: _fds_back(pid, fds_before + 4), timeout=15)
    statuses = dict(sorted(outcome.statuses.items()))
    print(f"\nburst: {ATTEMPTS} attempts in {elapsed:.1f}s → {statuses}; "
          f"edge RSS {rss_before:.1f} → {rss_peak:.1f} MB, fds {fds_before} → {fds_peak} → "
          f"{fds_after}")


async def _fds_back(pid: int, limit: int) -> int | None:
    fds = open_fds(pid)
    return fds if fds <= limit else None
