"""TICKWIRE_EDGE_WORKERS (issue #20): several edge processes on one port, against the real
Redis and Kafka. Both workers take connections, /metrics answers for both, a killed
worker comes back, a control message naming the pod reaches every worker, and SIGTERM
to the parent drains them all."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
import msgpack
import psutil
import pytest

from tickwire.edge.workers import METRICS_DIR_ENV

from integration.wsclient import WsClient, eventually

pytestmark = pytest.mark.asyncio


def workers(parent_pid: int) -> dict[str, int]:
    """Worker id (`.w<i>`) → PID, of the parent's live children."""
    found = {}
    for child in psutil.Process(parent_pid).children():
        try:
            edge_id = child.environ().get("TICKWIRE_EDGE_ID", "")
            if child.status() != psutil.STATUS_ZOMBIE and ".w" in edge_id:
                found[edge_id] = child.pid
        except psutil.Error:
            continue
    return found


def stop_strays(pids) -> None:
    """Workers are the test's processes too: none outlives it."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def edge_ids_of_new_connections(url: str, count: int) -> set[str]:
    ids = set()
    for _ in range(count):
        client = await WsClient.connect(url)
        try:
            ids.add((await client.next())["edgeId"])
        finally:
            await client.close()
    return ids


async def metrics_text(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/metrics") as response:
            return await response.text()


async def test_workers_share_the_port_report_together_and_come_back(stack):
    edge = stack.edge("edge-k1", TICKWIRE_EDGE_WORKERS="2", TICKWIRE_EDGE_DRAIN_SECONDS="1")
    seen: set[int] = set()
    try:
        both = {"edge-k1.w0", "edge-k1.w1"}
        pids = await eventually(lambda: _all_workers(edge.process.pid, both), timeout=60)
        seen.update(pids.values())
        # SO_REUSEPORT spreads new connections over both workers.
        ids = await eventually(lambda: _reaches(edge.ws_url, both), timeout=60)
        assert ids == both
        text = await metrics_text(edge.url)
        for worker in ("w0", "w1"):
            assert f'worker="{worker}"' in text
            assert any(line.startswith("tickwire_edge_connections_opened_total")
                       and f'worker="{worker}"' in line for line in text.splitlines())

        # A crashed worker is restarted under the same id, and serves again.
        os.kill(pids["edge-k1.w1"], signal.SIGKILL)
        restarted = await eventually(lambda: _restarted(edge.process.pid, pids), timeout=60)
        seen.update(restarted.values())
        assert await eventually(lambda: _reaches(edge.ws_url, both), timeout=60) == both
        # ... and its metrics listener is back on the same socket path.
        metrics_dir = psutil.Process(restarted["edge-k1.w1"]).environ()[METRICS_DIR_ENV]
        await eventually(lambda: _metrics_of(edge.url, {"w0", "w1"}), timeout=30)

        # SIGTERM to the parent: every worker drains and exits, then the parent, all 0.
        clients = [await WsClient.connect(edge.ws_url) for _ in range(8)]
        assert {(await c.next())["edgeId"] for c in clients} <= both
        edge.process.signal(signal.SIGTERM)
        notices = await asyncio.gather(*(c.until(lambda m: m["type"] == "reconnect", timeout=30)
                                         for c in clients))
        assert all(n["reason"] == "draining" for n in notices)
        for client in clients:
            await client.close()
        assert edge.process.proc.wait(timeout=60) == 0
        assert not os.path.exists(metrics_dir)
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status()
                       != psutil.STATUS_ZOMBIE for pid in seen)
    finally:
        edge.process.stop()
        stop_strays(seen)


async def test_a_control_message_naming_the_pod_reaches_every_worker(stack, injector):
    edge = stack.edge("edge-k2", TICKWIRE_EDGE_WORKERS="2", TICKWIRE_EDGE_DRAIN_SECONDS="1")
    seen: set[int] = set()
    clients: list[WsClient] = []
    try:
        both = {"edge-k2.w0", "edge-k2.w1"}
        pids = await eventually(lambda: _all_workers(edge.process.pid, both), timeout=60)
        seen.update(pids.values())
        await eventually(lambda: _reaches(edge.ws_url, both), timeout=60)
        # Clients on both workers (keep connecting until each worker holds some).
        by_worker: dict[str, list[WsClient]] = {w: [] for w in both}
        while any(len(v) < 2 for v in by_worker.values()) and len(clients) < 200:
            client = await WsClient.connect(edge.ws_url)
            clients.append(client)
            by_worker[(await client.next())["edgeId"]].append(client)
        assert all(len(v) >= 2 for v in by_worker.values())
        await injector.redis.publish("market-data:control",
                                     msgpack.packb({"type": "drain", "edge": "edge-k2"}))
        notices = await asyncio.gather(*(c.until(lambda m: m["type"] == "reconnect", timeout=30)
                                         for v in by_worker.values() for c in v))
        assert all(n["reason"] == "draining" for n in notices)
    finally:
        for client in clients:
            await client.close()
        seen.update(workers(edge.process.pid).values())
        edge.process.stop()
        stop_strays(seen)


async def _metrics_of(url: str, workers_wanted: set[str]) -> str | None:
    text = await metrics_text(url)
    labelled = {w for w in workers_wanted if f'worker="{w}"' in text}
    return text if labelled == workers_wanted else None


async def _all_workers(parent_pid: int, ids: set[str]) -> dict[str, int] | None:
    found = workers(parent_pid)
    return found if set(found) == ids else None


async def _restarted(parent_pid: int, before: dict[str, int]) -> dict[str, int] | None:
    found = workers(parent_pid)
    if set(found) == set(before) and found != before:
        return found
    return None


async def _reaches(url: str, ids: set[str]) -> set[str] | None:
    try:
        got = await edge_ids_of_new_connections(url, 16)
    except (aiohttp.ClientError, OSError):
        return None
    return got if got == ids else None
