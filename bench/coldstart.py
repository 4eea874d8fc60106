"""The cold-symbol trial (issue #19): time to first quote of a symbol nobody watched.

A real registry, ingestor (simulated provider) and two edges run on the bench stack. One
client on edge A holds `--active` symbols, so they stay active and polled. Then, one at
a time, a client on edge B subscribes a symbol never seen before and waits for its first
`price_update`: **time to first quote** = that moment − the subscribe, which spans edge B's
announcement to Kafka, the registry applying it, the active-symbols topic, the ingestor's
first fetch and the tick's way back. Measured twice: quiet, and **under churn**, while a
second client on edge A alternates subscribe/unsubscribe of `--active` other symbols at
`--churn-messages` per second (inside the message limit), the load that once stalled the
registry for minutes.

Standalone: `uv run --frozen python -m bench.coldstart --help`; `make bench` runs it after
the other trials (`--coldstart-active 0` there skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import aiohttp

FIRST_QUOTE_TIMEOUT = 60.0


async def _client(session: aiohttp.ClientSession, url: str, symbols: list[str]):
    ws = await session.ws_connect(url)
    await ws.receive_json(timeout=10)  # connected
    await ws.send_json({"action": "subscribe", "symbols": symbols})
    while (await ws.receive_json(timeout=30))["type"] != "subscribed":
        pass
    return ws


async def _first_quote(session: aiohttp.ClientSession, url: str, symbol: str) -> float:
    """Seconds from subscribing `symbol` to its first update."""
    ws = await session.ws_connect(url)
    try:
        await ws.receive_json(timeout=10)
        asked = time.perf_counter()
        await ws.send_json({"action": "subscribe", "symbols": [symbol]})
        deadline = asked + FIRST_QUOTE_TIMEOUT
        while True:
            message = await ws.receive_json(timeout=max(0.01, deadline - time.perf_counter()))
            if message["type"] == "price_update" or (
                    message["type"] == "batch_update"
                    and any(u["symbol"] == symbol for u in message["updates"])):
                return time.perf_counter() - asked
    finally:
        await ws.close()


async def _churn(ws, symbols: list[str], per_second: float, stop: asyncio.Event) -> int:
    sent = 0
    while not stop.is_set():
        action = "subscribe" if sent % 2 == 0 else "unsubscribe"
        await ws.send_json({"action": action, "symbols": symbols})
        sent += 1
        await asyncio.sleep(1 / per_second)
    return sent


async def _read_all(ws, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await ws.receive(timeout=0.5)
        except asyncio.TimeoutError:
            continue


async def _measure(edge_a: str, edge_b: str, active: int, samples: int,
                   churn_per_second: float) -> dict:
    async with aiohttp.ClientSession() as session:
        holder = await _client(session, edge_a, [f"CA{n:04d}" for n in range(active)])
        quiet = [await _first_quote(session, edge_b, f"CQ{n:04d}") for n in range(samples)]
        churner = await _client(session, edge_a, ["CBASE"])
        stop = asyncio.Event()
        churning = asyncio.ensure_future(
            _churn(churner, [f"CC{n:04d}" for n in range(active)], churn_per_second, stop))
        reading = asyncio.ensure_future(_read_all(churner, stop))
        try:
            churned = [await _first_quote(session, edge_b, f"CX{n:04d}") for n in range(samples)]
        finally:
            stop.set()
            sent = await churning
            await reading
        await churner.close()
        await holder.close()
    return {"quiet_s": quiet, "churn_s": churned, "churn_messages": sent}


def trial(stack, workdir: Path, active: int, samples: int, churn_per_second: float) -> dict:
    """One run on a started bench Stack: registry, ingestor, two edges, three clients."""
    from tickwire.localstack import ServiceLauncher, free_port

    launcher = ServiceLauncher(stack.redis_url, stack.kafka_bootstrap, workdir)
    processes = []
    try:
        quiet = {"TICKWIRE_LOG_FORMAT": "text"}
        processes.append(launcher.registry(free_port(), **quiet))
        processes.append(launcher.ingestor(free_port(), TICKWIRE_INGESTOR_PROVIDERS="simulated",
                                           TICKWIRE_INGESTOR_POLL_INTERVAL="1", **quiet))
        ports = [free_port(), free_port()]
        for port, name in zip(ports, ("bench-cold-a", "bench-cold-b")):
            processes.append(launcher.edge(port, name, TICKWIRE_EDGE_DRAIN_SECONDS="0", **quiet))
        result = asyncio.run(_measure(*(f"ws://127.0.0.1:{p}/ws" for p in ports), active,
                                      samples, churn_per_second))
    finally:
        for process in reversed(processes):
            process.stop()
    return {"active": active, "samples": samples, "churn_per_second": churn_per_second, **result}


FIGURES = {  # name → better
    "coldstart_first_quote_ms": "lower",
    "coldstart_first_quote_churn_ms": "lower",
}


def figures(result: dict) -> dict:
    return {"coldstart_first_quote_ms": round(statistics.median(result["quiet_s"]) * 1000, 1),
            "coldstart_first_quote_churn_ms": round(statistics.median(result["churn_s"]) * 1000, 1)}


def medians(results: list[dict]) -> dict:
    rows = [figures(r) for r in results]
    return {name: statistics.median(r[name] for r in rows) for name in FIGURES}


def main(argv: list[str] | None = None) -> int:
    from bench.alone import run_alone

    p = argparse.ArgumentParser(prog="python -m bench.coldstart",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--active", type=int, default=500, help="symbols held active meanwhile")
    p.add_argument("--samples", type=int, default=5, help="cold symbols per phase")
    p.add_argument("--churn-messages", type=float, default=45.0,
                   help="subscribe/unsubscribe messages per second during the churn phase")
    p.add_argument("--out", type=Path, default=None, help="write the result here as JSON")
    args = p.parse_args(argv)
    return run_alone("coldstart", trial, figures, args.out, args.active, args.samples, args.churn_messages)


if __name__ == "__main__":
    raise SystemExit(main())
