"""The upstream-stream trial: trades from a provider stream to a browser-side client.

A fake Finnhub (its real trade protocol, in a process of its own) streams `--rate`
trades/s spread evenly over `--symbols` symbols to a real ingestor, which conflates them
into ticks (at most TICKWIRE_INGESTOR_MAX_TICKS_PER_SECOND per symbol) and publishes
through Redis to a real edge; a watcher process holds WebSocket clients that together
watch every symbol. Every trade has a price unique to its symbol, so an update received
is joined with the trade it carries: **source-to-client latency** = receive time − the
moment the fake sent the trade (one host, one clock). Also reported: trades in and ticks
out (the ingestor's counters over the window) and ingestor CPU-µs per trade.

Standalone: `uv run --frozen python -m bench.upstream --help`; `make bench` runs it after
the edge trials (`--upstream-rate 0` there skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np

from bench.analysis import percentiles

SYMBOLS_PER_CLIENT = 100
STEP_SECONDS = 0.001


def symbol_names(count: int) -> list[str]:
    return [f"UP{n:04d}" for n in range(count)]


def price(index: int, k: int) -> float:
    """The k-th trade price of symbol `index`: unique per symbol, exact in cents."""
    return round(10 + index + (k % 90_000) / 100 + (k // 90_000) * 1000, 2)


# -- the fake provider (its own process) ---------------------------------------------------


def feed(conn, port: int, symbols: int, rate: float, seconds: float) -> None:
    asyncio.run(_feed(conn, port, symbols, rate, seconds))


async def _feed(conn, port: int, count: int, rate: float, seconds: float) -> None:
    from aiohttp import web

    names = symbol_names(count)
    subscribed: set[str] = set()
    sockets: list[web.WebSocketResponse] = []
    all_in = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets.append(ws)
        async for message in ws:
            body = json.loads(message.data)
            if body.get("type") == "subscribe":
                subscribed.add(body["symbol"])
                if len(subscribed) == count:
                    all_in.set()
        sockets.remove(ws)
        return ws

    app = web.Application()
    app.router.add_get("/finnhub", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    conn.send(("listening",))
    await asyncio.wait_for(all_in.wait(), 300)
    conn.send(("subscribed",))
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # ("go",)
    sent_at = np.zeros((count, int(rate * seconds / count) + 2), dtype=np.int64)
    counters = [0] * count
    sent = 0
    started = time.monotonic()
    cursor = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = min(int(elapsed * rate), int(rate * seconds)) - sent
        if due > 0 and sockets:
            now_ns = time.time_ns()
            trades = []
            for _ in range(due):
                index = cursor
                cursor = (cursor + 1) % count
                k = counters[index]
                counters[index] = k + 1
                if k < sent_at.shape[1]:
                    sent_at[index, k] = now_ns
                trades.append({"s": names[index], "p": price(index, k), "t": now_ns // 1_000_000,
                               "v": 100, "c": ["1"]})
            frame = json.dumps({"type": "trade", "data": trades})
            for ws in list(sockets):
                await ws.send_str(frame)
            sent += due
        await asyncio.sleep(STEP_SECONDS)
    conn.send(("done", sent, sent_at))
    await runner.cleanup()


# -- the watching clients (their own process) ----------------------------------------------


def watch(conn, url: str, symbols: int) -> None:
    asyncio.run(_watch(conn, url, symbols))


async def _watch(conn, url: str, count: int) -> None:
    import aiohttp
    import orjson

    names = symbol_names(count)
    index = {name: n for n, name in enumerate(names)}
    received: list[tuple[int, float, int]] = []
    stop = asyncio.Event()

    async def client(session, chunk: list[str], acked: asyncio.Event) -> None:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            await ws.send_json({"action": "subscribe", "symbols": chunk})
            async for message in ws:
                now = time.time_ns()
                body = orjson.loads(message.data)
                kind = body.get("type")
                if kind == "subscribed":
                    acked.set()
                updates = (body["updates"] if kind == "batch_update" else
                           [body] if kind == "price_update" else ())
                for update in updates:
                    # A snapshot is a tick of an earlier repeat (the same prices, other
                    # send times): joined with this repeat's trades it read as negative.
                    data = update["data"]
                    if not update.get("snapshot") and data.get("source") == "finnhub-stream":
                        received.append((index[update["symbol"]], data["price"], now))
                if stop.is_set():
                    break

    chunks = [names[i:i + SYMBOLS_PER_CLIENT] for i in range(0, count, SYMBOLS_PER_CLIENT)]
    acks = [asyncio.Event() for _ in chunks]
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(client(session, c, a)) for c, a in zip(chunks, acks)]
        await asyncio.wait_for(asyncio.gather(*(a.wait() for a in acks)), 120)
        conn.send(("watching",))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # ("stop",)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(("received", received))


# -- one trial (the runner) -----------------------------------------------------------------


def trial(stack, workdir: Path, symbols: int, rate: float, seconds: float,
          drain: float = 1.0) -> dict:
    """One run on a started bench Stack: fake feed, registry, ingestor, edge, watcher."""
    from bench.cpu import cpu_seconds
    from bench.run import Child, metric
    from tickwire.localstack import ServiceLauncher, free_port

    launcher = ServiceLauncher(stack.redis_url, stack.kafka_bootstrap, workdir)
    feed_port, edge_port, ingestor_port = free_port(), free_port(), free_port()
    source = Child("upstream-feed", feed, feed_port, symbols, rate, seconds)
    processes, watcher = [], None
    try:
        source.expect("listening")
        processes.append(launcher.registry(free_port(), TICKWIRE_LOG_FORMAT="text"))
        ingestor = launcher.ingestor(
            ingestor_port, TICKWIRE_INGESTOR_STREAMS="finnhub",
            TICKWIRE_INGESTOR_PROVIDERS="simulated", TICKWIRE_INGESTOR_FINNHUB_API_KEY="bench",
            TICKWIRE_INGESTOR_FINNHUB_WS_URL=f"ws://127.0.0.1:{feed_port}/finnhub",
            TICKWIRE_INGESTOR_FINNHUB_STREAM_SYMBOLS=str(symbols),
            TICKWIRE_INGESTOR_FRESHNESS_SECONDS="600", TICKWIRE_LOG_FORMAT="text")
        processes.append(ingestor)
        processes.append(launcher.edge(edge_port, "bench-upstream", TICKWIRE_LOG_FORMAT="text",
                                       TICKWIRE_EDGE_DRAIN_SECONDS="0"))
        watcher = Child("upstream-watcher", watch, f"ws://127.0.0.1:{edge_port}/ws", symbols)
        watcher.expect("watching")
        source.expect("subscribed", timeout=300)
        trades_before = metric(ingestor_port, "tickwire_ingestor_stream_trades_total") or 0.0
        ticks_before = metric(ingestor_port, "tickwire_ingestor_stream_ticks_total") or 0.0
        held_before = metric(ingestor_port, "tickwire_ingestor_stream_latency_seconds_sum") or 0.0
        cpu_before = cpu_seconds(ingestor.pid)
        source.conn.send(("go",))
        _, sent, sent_at = source.expect("done", timeout=seconds + 120)
        time.sleep(drain)
        cpu = cpu_seconds(ingestor.pid) - cpu_before
        trades = (metric(ingestor_port, "tickwire_ingestor_stream_trades_total") or 0) - trades_before
        ticks = (metric(ingestor_port, "tickwire_ingestor_stream_ticks_total") or 0) - ticks_before
        held = (metric(ingestor_port, "tickwire_ingestor_stream_latency_seconds_sum") or 0) - held_before
        watcher.conn.send(("stop",))
        _, received = watcher.expect("received", timeout=60)
    finally:
        if watcher is not None:
            watcher.stop()
        source.stop()
        for process in reversed(processes):
            process.stop()
    latencies = []
    for index, value, at in received:
        k = _trade_number(index, value)
        if k is not None and k < sent_at.shape[1] and sent_at[index, k]:
            latencies.append((at - sent_at[index, k]) / 1e6)
    return {"symbols": symbols, "rate": rate, "seconds": seconds, "trades_sent": int(sent),
            "trades_in": int(trades), "ticks_out": int(ticks), "updates_received": len(received),
            "latency_ms": percentiles(np.array(latencies, dtype=np.float64)),
            # Of that, inside the ingestor: a trade's arrival to its tick's publish (mean).
            "ingestor_ms_mean": round(held / ticks * 1000, 3) if ticks else None,
            "ingestor_cpu_us_per_trade": round(cpu / trades * 1e6, 2) if trades else None,
            "ingestor_cpu_cores": round(cpu / (seconds + drain), 3)}


def _trade_number(index: int, value: float) -> int | None:
    cents = round((value - 10 - index) * 100)
    thousands, rest = divmod(cents, 100_000)
    k = thousands * 90_000 + rest
    return k if k >= 0 and math.isclose(price(index, k), value) else None


FIGURES = {  # name → (path in a trial's result, better)
    "upstream_trades_in_per_s": ("trades_in_per_s", "higher"),
    "upstream_ticks_out_per_s": ("ticks_out_per_s", "higher"),
    "upstream_latency_p50_ms": ("p50", "lower"),
    "upstream_latency_p99_ms": ("p99", "lower"),
    "upstream_cpu_us_per_trade": ("ingestor_cpu_us_per_trade", "lower"),
}


def figures(result: dict) -> dict:
    per_s = result["seconds"]
    return {"upstream_trades_in_per_s": round(result["trades_in"] / per_s, 1),
            "upstream_ticks_out_per_s": round(result["ticks_out"] / per_s, 1),
            "upstream_latency_p50_ms": result["latency_ms"]["p50"],
            "upstream_latency_p99_ms": result["latency_ms"]["p99"],
            "upstream_cpu_us_per_trade": result["ingestor_cpu_us_per_trade"]}


def medians(results: list[dict]) -> dict:
    rows = [figures(r) for r in results]
    return {name: statistics.median(v) if (v := [r[name] for r in rows if r[name] is not None])
            else None for name in FIGURES}


def main(argv: list[str] | None = None) -> int:
    from bench.alone import run_alone

    p = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=10_000.0, help="trades/s from the provider")
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds")
    p.add_argument("--out", type=Path, default=None, help="write the result here as JSON")
    args = p.parse_args(argv)
    return run_alone("upstream", trial, figures, args.out, args.symbols, args.rate, args.seconds)


if __name__ == "__main__":
    raise SystemExit(main())
