"""200 clients that stop reading, beside a few that keep up: the slow ones are conflated and
then shed with 1013, the edge's memory stays bounded, and the fast ones get every tick, in
order. Delivery latency of the fast clients is measured with and without the slow crowd
and printed (no assertion on it: this machine is shared)."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime

from integration.faults import metric, rss_mb, subscribed, updates_in
from integration.rawws import RawWebSocket
from integration.wsclient import WsClient, eventually, get_json

SLOW = 200
FAST = 5
SYMBOLS = [f"SC{n}" for n in range(10)]
PADDING = "x" * 2000          # ~2 KB frames fill the slow clients' buffers quickly
ROUND_PAUSE = 0.05            # ~20 rounds of 10 ticks per second
BASELINE_ROUNDS = 60
MEMORY_BOUND_MB = 120         # growth of the edge's RSS over its idle size, at the peak
SHED_WITHIN = 45.0            # observed: ~17 s (buffers fill, then slow_client_seconds)


class FastReader:
    """Reads continuously; keeps the seqs and the delivery latency of every update."""

    def __init__(self, client: WsClient):
        self.client = client
        self.seqs: dict[str, list[int]] = {s: [] for s in SYMBOLS}
        self.latencies_ms: list[float] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            message = await self.client.next(timeout=120)
            now = time.time()
            self.client.received.clear()
            for update in updates_in(message):
                self.seqs[update["symbol"]].append(update["seq"])
                sent = datetime.fromisoformat(update["data"]["timestamp"].replace("Z", "+00:00"))
                self.latencies_ms.append((now - sent.timestamp()) * 1000)

    def has(self, rounds: int) -> bool:
        return all(len(seqs) >= rounds for seqs in self.seqs.values())

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, ConnectionError):
            pass


def _percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms (n={len(samples)})"


async def _publish_rounds(injector, first: int, last: int) -> None:
    for seq in range(first, last + 1):
        for symbol in SYMBOLS:
            await injector.publish(symbol, seq, source=PADDING)
        await asyncio.sleep(ROUND_PAUSE)


async def test_slow_consumers_are_conflated_then_shed_and_fast_ones_get_every_tick(
        stack, injector):
    edge = stack.edge("edge-s1", TICKWIRE_EDGE_SLOW_CLIENT_SECONDS="2",
                      TICKWIRE_EDGE_CONNECTION_BURST_PER_IP="1000",
                      TICKWIRE_EDGE_CONNECTIONS_PER_SECOND_PER_IP="1000")
    pid = edge.process.pid
    readers = [FastReader(await subscribed(edge.ws_url, SYMBOLS)) for _ in range(FAST)]
    slow: list[RawWebSocket] = []
    try:
        await eventually(lambda: _watched(injector))
        rss_idle = rss_mb(pid)

        # Baseline: fast clients alone.
        await _publish_rounds(injector, 1, BASELINE_ROUNDS)
        await eventually(lambda: _all_have(readers, BASELINE_ROUNDS), timeout=30)
        baseline = [x for r in readers for x in r.latencies_ms]
        for reader in readers:
            reader.latencies_ms = []

        # The crowd arrives, subscribes, and never reads again.
        slow = await asyncio.to_thread(_open_slow_clients, edge.port)
        rss_peak = rss_idle
        seq = BASELINE_ROUNDS
        started = time.monotonic()
        shed = 0.0
        while time.monotonic() - started < SHED_WITHIN:
            await _publish_rounds(injector, seq + 1, seq + 20)
            seq += 20
            rss_peak = max(rss_peak, rss_mb(pid))
            shed = await metric(edge.url, "tickwire_edge_connections_closed_total",
                                '{reason="slow consumer"}')
            if shed >= SLOW:
                break
        took = time.monotonic() - started
        open_now = await metric(edge.url, "tickwire_edge_connections", '{kind="websocket"}')
        # All the slow ones, none of the fast ones.
        assert shed == SLOW, (f"{shed:.0f} of {SLOW} slow consumers shed in {took:.0f}s; "
                              f"{open_now:.0f} connections still open")
        assert await metric(edge.url, "tickwire_edge_conflated_updates_total") > 0
        assert rss_peak - rss_idle < MEMORY_BOUND_MB, (rss_idle, rss_peak)

        # The fast clients got every tick of every symbol, in order, with the crowd there.
        await eventually(lambda: _all_have(readers, seq), timeout=30)
        for reader in readers:
            for symbol, seqs in reader.seqs.items():
                assert seqs == list(range(1, seq + 1)), symbol
            assert not reader.client.ws.closed
        loaded = [x for r in readers for x in r.latencies_ms]

        # Each slow socket was closed by the edge: its buffered bytes end in EOF or a reset.
        read = await asyncio.to_thread(lambda: [s.drain_until_closed() for s in slow])
        status, _, _ = await get_json(f"{edge.url}/readyz")
        assert status == 200
        rss_after = rss_mb(pid)
        print(f"\nslow consumers: {SLOW} shed (1013) {took:.1f}s after they stopped reading, "
              f"{seq} rounds of {len(SYMBOLS)} ticks; {sum(read) / SLOW / 1024:.0f} KiB on "
              f"average was still in each slow socket's kernel buffers\n"
              f"edge RSS: idle {rss_idle:.1f} MB, peak {rss_peak:.1f} MB, "
              f"after {rss_after:.1f} MB\n"
              f"fast clients' delivery latency alone: {_percentiles(baseline)}; "
              f"with {SLOW} slow clients: {_percentiles(loaded)}")
    finally:
        for reader in readers:
            await reader.stop()
            await reader.client.close()
        for sock in slow:
            sock.close()


def _open_slow_clients(port: int) -> list[RawWebSocket]:
    clients = []
    for _ in range(SLOW):
        client = RawWebSocket(port, receive_buffer=4096)
        client.send_json({"action": "subscribe", "symbols": SYMBOLS})
        clients.append(client)
    return clients


async def _watched(injector) -> bool:
    return await injector.subscribers(SYMBOLS[-1]) == 1


async def _all_have(readers: list[FastReader], rounds: int) -> bool:
    return all(r.has(rounds) for r in readers)
