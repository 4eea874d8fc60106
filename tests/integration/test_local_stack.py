"""The `make run` stack (tickwire.localstack.start_stack under a Supervisor, as
deploy/local/run.py runs it) on free ports: a crashed child comes back on the same port while
the others ride through, and wss works through HAProxy with the generated CA."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tickwire.localstack import (Backoff, StackPorts, Supervisor, TlsFiles, ensure_tls,
                                 start_stack)
from tickwire.localstack.process import http_ok, port_open

from integration.wsclient import WsClient, eventually


class RunningStack:
    def __init__(self, supervisor: Supervisor, ports: StackPorts, tls: TlsFiles, log: list[str]):
        self.supervisor, self.ports, self.tls, self.log = supervisor, ports, tls, log

    def pids(self) -> dict[str, int | None]:
        return {p.name: p.pid for p in self.supervisor.processes}


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory) -> Iterator[RunningStack]:
    workdir: Path = tmp_path_factory.mktemp("localstack")
    ports = StackPorts.free()
    log: list[str] = []
    supervisor = Supervisor(log=log.append, backoff=Backoff(first=0.5))
    stop = threading.Event()
    watcher = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    try:
        tls = ensure_tls(workdir / "tls")
        start_stack(supervisor, ports, workdir, tls, say=lambda line: None,
                    env={"TICKWIRE_INGESTOR_PROVIDERS": "simulated",
                         "TICKWIRE_INGESTOR_POLL_INTERVAL": "0.3",
                         "TICKWIRE_EDGE_REGISTRY_HEARTBEAT_SECONDS": "1"})
        watcher.start()
        yield RunningStack(supervisor, ports, tls, log)
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(10)
        supervisor.stop()


async def tick_once(url: str, symbol: str, timeout: float = 40.0, **kwargs) -> dict:
    client = await WsClient.connect(url, **kwargs)
    try:
        await client.send({"action": "subscribe", "symbols": [symbol]})
        return (await client.updates(symbol, 1, timeout=timeout))[0]
    finally:
        await client.close()


async def first_tick(url: str, symbol: str = "AAPL", timeout: float = 60.0, **kwargs) -> dict:
    """A tick of `symbol`, reconnecting as a real client would while a restart settles."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await tick_once(url, symbol, **kwargs)
        except (ConnectionError, aiohttp.ClientError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def restarted(stack: RunningStack, name: str, old_pid: int, ready) -> None:
    def back() -> bool:
        process = stack.supervisor[name]
        return process.pid != old_pid and process.alive() and ready()

    async def check() -> bool:
        return await asyncio.to_thread(back)

    await eventually(check, timeout=60)


async def test_a_killed_redis_and_edge_come_back_and_ticks_flow_again(local_stack):
    lb = f"ws://127.0.0.1:{local_stack.ports.lb}/ws"
    await first_tick(lb)

    before = local_stack.pids()
    redis = local_stack.supervisor["redis"]
    redis.kill()
    await restarted(local_stack, "redis", before["redis"],
                    lambda: port_open(local_stack.ports.redis))
    assert any(line.startswith("redis (pid ") and "exited with -9" in line
               for line in local_stack.log), local_stack.log
    await first_tick(lb)

    edge_id, edge_port = local_stack.ports.edges[0]
    local_stack.supervisor[edge_id].kill()
    await restarted(local_stack, edge_id, before[edge_id],
                    lambda: http_ok(f"http://127.0.0.1:{edge_port}/readyz"))
    await first_tick(f"ws://127.0.0.1:{edge_port}/ws", symbol="MSFT")
    await first_tick(lb, symbol="MSFT")

    after = local_stack.pids()
    rode_through = [name for name in before if name not in ("redis", edge_id)]
    assert {n: after[n] for n in rode_through} == {n: before[n] for n in rode_through}


async def test_wss_through_haproxy_verifies_with_the_generated_ca(local_stack):
    context = ssl.create_default_context(cafile=str(local_stack.tls.ca))
    tick = await first_tick(f"wss://127.0.0.1:{local_stack.ports.tls}/ws", symbol="NVDA",
                            ssl=context)
    assert tick["symbol"] == "NVDA"
    for host in ("localhost", "127.0.0.1"):
        await first_tick(f"wss://{host}:{local_stack.ports.tls}/ws", symbol="NVDA", ssl=context)

    untrusting = ssl.create_default_context()
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        await tick_once(f"wss://127.0.0.1:{local_stack.ports.tls}/ws", "NVDA", ssl=untrusting)
