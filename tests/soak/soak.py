"""`make soak`: the whole stack under moderate, churning load for a while, watched for leaks.

Starts Redis, Kafka, the registry, the ingestor (simulated provider), two edges and HAProxy
on free loopback ports (tickwire.localstack), then drives them through HAProxy:
WebSocket clients that subscribe, change their watchlists and reconnect now and then,
REST pollers (with ETags) and short-lived SSE streams. Every SOAK_INTERVAL seconds it
samples the resident memory and open descriptors of every process.

It fails (exit 1) when
- a tickwire service (registry, ingestor, an edge) keeps growing: over the run after the
  warm-up, its RSS grew by more than 8 MB + 5 % or its descriptors by more than 8, AND
  every sample of the second half is above every sample of the first (still rising, not
  a plateau reached after warm-up). Redis, Kafka and HAProxy are sampled and charted but
  not judged: a JVM heap and a cache grow by design.
- a process died, or a client saw a symbol's `seq` go backwards within an epoch.

Settings (environment): SOAK_MINUTES (10; the seed asks for 24 h: SOAK_MINUTES=1440),
SOAK_INTERVAL (60 s between samples), SOAK_CLIENTS (60), SOAK_WARMUP (60 s),
SOAK_OUT (test-artifacts/soak). Writes soak.json and soak.png there.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tickwire.localstack import (ManagedProcess, ServiceLauncher, free_port, start_haproxy,
                                 start_kafka, start_redis)

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = [f"SK{n:02d}" for n in range(40)]
WATCHLIST = 8
RSS_SLACK_MB, RSS_SLACK_RATIO, FD_SLACK = 8.0, 0.05, 8
JUDGED = ("registry", "ingestor", "edge-1", "edge-2")


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


# -- the stack --------------------------------------------------------------------------------


def start_stack(workdir: Path) -> tuple[dict[str, ManagedProcess], str]:
    """Every process, by name, and the load balancer's base URL. On failure, stops what
    was started and raises."""
    processes: dict[str, ManagedProcess] = {}
    try:
        redis_port, kafka_port = free_port(), free_port()
        processes["redis"] = start_redis(redis_port, workdir / "redis")
        processes["kafka"] = start_kafka(kafka_port, free_port(), workdir / "kafka")
        launcher = ServiceLauncher(f"redis://127.0.0.1:{redis_port}/0",
                                   f"127.0.0.1:{kafka_port}", workdir / "logs",
                                   env={"TICKWIRE_LOG_FORMAT": "text",
                                        "TICKWIRE_LOG_LEVEL": "WARNING",
                                        "TICKWIRE_EDGE_TRUSTED_PROXIES": "127.0.0.1"})
        processes["registry"] = launcher.registry(free_port())
        processes["ingestor"] = launcher.ingestor(free_port(),
                                                  TICKWIRE_INGESTOR_POLL_INTERVAL="0.5")
        edges = [("edge-1", free_port()), ("edge-2", free_port())]
        for edge_id, port in edges:
            processes[edge_id] = launcher.edge(port, edge_id)
        lb_port = free_port()
        processes["haproxy"] = start_haproxy(lb_port, edges, workdir / "haproxy")
    except BaseException:
        stop_stack(processes)
        raise
    return processes, f"127.0.0.1:{lb_port}"


def stop_stack(processes: dict[str, ManagedProcess]) -> None:
    for process in reversed(list(processes.values())):
        process.stop()


# -- sampling ---------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(processes: dict[str, ManagedProcess], started: float) -> dict:
    services = {}
    for name, process in processes.items():
        if process.alive():
            services[name] = {"rss_mb": round(rss_mb(process.pid), 2),
                              "fds": len(os.listdir(f"/proc/{process.pid}/fd"))}
        else:
            services[name] = None
    return {"t_s": round(time.monotonic() - started, 1), "services": services}


def judge(samples: list[dict]) -> dict[str, dict]:
    """Per judged service and metric: first, last, slope per minute, and whether it is a
    sustained growth (see the module docstring)."""
    verdicts: dict[str, dict] = {}
    for name in JUDGED:
        verdicts[name] = {}
        for metric in ("rss_mb", "fds"):
            points = [(s["t_s"] / 60, s["services"][name][metric]) for s in samples
                      if s["services"].get(name)]
            if len(points) < 3:
                verdicts[name][metric] = {"growing": False, "note": "too few samples"}
                continue
            xs, ys = zip(*points)
            mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
            slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / \
                sum((x - mean_x) ** 2 for x in xs)
            half = len(ys) // 2
            limit = (RSS_SLACK_MB + RSS_SLACK_RATIO * ys[0]) if metric == "rss_mb" else FD_SLACK
            rising = min(ys[-half:]) > max(ys[:half])
            verdicts[name][metric] = {
                "first": ys[0], "last": ys[-1], "max": max(ys),
                "slope_per_min": round(slope, 3), "limit": round(limit, 2),
                "growing": rising and ys[-1] - ys[0] > limit,
            }
    return verdicts


# -- load -------------------------------------------------------------------------------------


@dataclass
class Load:
    updates: int = 0
    reconnects: int = 0
    resubscribes: int = 0
    rest_requests: int = 0
    rest_not_modified: int = 0
    sse_streams: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    order_violations: list[str] = field(default_factory=list)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def ws_client(lb: str, load: Load, stop: asyncio.Event, rng: random.Random) -> None:
    """One client: subscribe a watchlist, read; every ~30 s change two symbols; every
    ~2 min reconnect. Checks per-symbol ordering within an epoch."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            watch = rng.sample(SYMBOLS, WATCHLIST)
            last: dict[str, tuple[str, int]] = {}
            try:
                async with session.ws_connect(f"ws://{lb}/ws", heartbeat=20) as ws:
                    await ws.send_json({"action": "subscribe", "symbols": watch})
                    lifetime = time.monotonic() + rng.uniform(60, 180)
                    next_change = time.monotonic() + rng.uniform(15, 45)
                    while not stop.is_set() and time.monotonic() < lifetime:
                        if time.monotonic() > next_change:
                            gone, new = watch[:2], rng.sample(
                                [s for s in SYMBOLS if s not in watch], 2)
                            watch = watch[2:] + new
                            for symbol in gone:
                                last.pop(symbol, None)
                            await ws.send_json({"action": "unsubscribe", "symbols": gone})
                            await ws.send_json({"action": "subscribe", "symbols": new})
                            load.resubscribes += 1
                            next_change = time.monotonic() + rng.uniform(15, 45)
                        try:
                            frame = await ws.receive(timeout=2)
                        except asyncio.TimeoutError:
                            continue
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                              aiohttp.WSMsgType.ERROR):
                                load.error(f"ws closed {ws.close_code}")
                                break
                            continue
                        _check(json.loads(frame.data), last, load)
            except (aiohttp.ClientError, OSError) as exc:
                load.error(f"ws {type(exc).__name__}")
                await asyncio.sleep(1)
            if not stop.is_set():
                load.reconnects += 1


def _check(message: dict, last: dict[str, tuple[str, int]], load: Load) -> None:
    if message.get("type") == "error":
        load.error(f"ws error {message.get('code')}")
    updates = [message] if message.get("type") == "price_update" else \
        message.get("updates", []) if message.get("type") == "batch_update" else []
    for update in updates:
        load.updates += 1
        symbol, epoch, seq = update["symbol"], update["epoch"], update["seq"]
        previous = last.get(symbol)
        if previous and previous[0] == epoch and seq <= previous[1] and \
                not update.get("snapshot"):
            load.order_violations.append(f"{symbol} {epoch} {previous[1]} → {seq}")
        last[symbol] = (epoch, seq)


async def rest_poller(lb: str, load: Load, stop: asyncio.Event, rng: random.Random) -> None:
    etags: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            symbol = rng.choice(SYMBOLS)
            headers = {"If-None-Match": etags[symbol]} if symbol in etags else {}
            try:
                async with session.get(f"http://{lb}/api/quotes/{symbol}",
                                       headers=headers) as response:
                    await response.read()
                    load.rest_requests += 1
                    if response.status == 304:
                        load.rest_not_modified += 1
                    elif response.status == 200:
                        etags[symbol] = response.headers.get("ETag", "")
                    elif response.status != 404:
                        load.error(f"rest {response.status}")
            except (aiohttp.ClientError, OSError) as exc:
                load.error(f"rest {type(exc).__name__}")
            await asyncio.sleep(0.5)


async def sse_reader(lb: str, load: Load, stop: asyncio.Event, rng: random.Random) -> None:
    """Opens a stream of three symbols, reads it for ~20 s, leaves, again."""
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            symbols = ",".join(rng.sample(SYMBOLS, 3))
            try:
                async with session.get(f"http://{lb}/api/stream?symbols={symbols}") as response:
                    load.sse_streams += 1
                    until = time.monotonic() + 20
                    while not stop.is_set() and time.monotonic() < until:
                        try:
                            await asyncio.wait_for(response.content.readline(), 2)
                        except asyncio.TimeoutError:
                            continue
            except (aiohttp.ClientError, OSError) as exc:
                load.error(f"sse {type(exc).__name__}")
                await asyncio.sleep(1)


# -- the run ------------------------------------------------------------------------------------


async def drive(processes: dict[str, ManagedProcess], lb: str, minutes: float, interval: float,
                clients: int, warmup: float) -> tuple[list[dict], Load, list[str]]:
    load, stop, rng = Load(), asyncio.Event(), random.Random(7)
    tasks = [asyncio.create_task(ws_client(lb, load, stop, random.Random(rng.random())))
             for _ in range(clients)]
    tasks += [asyncio.create_task(rest_poller(lb, load, stop, random.Random(1))),
              asyncio.create_task(rest_poller(lb, load, stop, random.Random(2))),
              asyncio.create_task(sse_reader(lb, load, stop, random.Random(3)))]
    print(f"warming up for {warmup:.0f}s with {clients} clients ...", flush=True)
    await asyncio.sleep(warmup)
    started = time.monotonic()
    samples = [sample(processes, started)]
    deaths: list[str] = []
    end = started + minutes * 60
    while time.monotonic() < end and not deaths:
        await asyncio.sleep(min(interval, max(0.0, end - time.monotonic())))
        samples.append(sample(processes, started))
        deaths = [n for n, s in samples[-1]["services"].items() if s is None]
        _progress(samples[-1], load)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return samples, load, deaths


def _progress(point: dict, load: Load) -> None:
    parts = [f"{name} {s['rss_mb']:.0f}MB/{s['fds']}fd" if s else f"{name} DEAD"
             for name, s in point["services"].items()]
    print(f"[{point['t_s'] / 60:5.1f} min] updates {load.updates}, reconnects "
          f"{load.reconnects}, rest {load.rest_requests} | " + ", ".join(parts), flush=True)


def chart(samples: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rss_ax, fd_ax) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    names = list(samples[0]["services"])
    for name in names:
        points = [(s["t_s"] / 60, s["services"][name]) for s in samples if s["services"][name]]
        minutes = [t for t, _ in points]
        style = "-" if name in JUDGED else ":"
        rss_ax.plot(minutes, [v["rss_mb"] for _, v in points], style, marker="o", label=name)
        fd_ax.plot(minutes, [v["fds"] for _, v in points], style, marker="o", label=name)
    rss_ax.set_ylabel("RSS (MB)")
    rss_ax.set_yscale("log")
    fd_ax.set_ylabel("open file descriptors")
    fd_ax.set_xlabel("minutes after warm-up")
    rss_ax.legend(loc="upper left", fontsize="small", ncol=4)
    rss_ax.set_title(title)
    for ax in (rss_ax, fd_ax):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    minutes = _env_number("SOAK_MINUTES", 10)
    interval = _env_number("SOAK_INTERVAL", 60)
    clients = int(_env_number("SOAK_CLIENTS", 60))
    warmup = _env_number("SOAK_WARMUP", 60)
    out = Path(os.environ.get("SOAK_OUT") or ROOT / "test-artifacts" / "soak")
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "run"
    print(f"soak: {minutes:g} min, a sample every {interval:g}s, {clients} WebSocket clients; "
          f"output in {out}", flush=True)
    processes, lb = start_stack(workdir)
    try:
        samples, load, deaths = asyncio.run(
            drive(processes, lb, minutes, interval, clients, warmup))
    finally:
        stop_stack(processes)

    verdicts = judge(samples)
    growing = [f"{name} {metric}" for name, metrics in verdicts.items()
               for metric, verdict in metrics.items() if verdict.get("growing")]
    failures = ([f"sustained growth: {', '.join(growing)}"] if growing else []) + \
        ([f"died: {', '.join(deaths)}"] if deaths else []) + \
        ([f"{len(load.order_violations)} seq order violations"] if load.order_violations else [])
    report = {
        "minutes": minutes, "interval_s": interval, "clients": clients, "warmup_s": warmup,
        "passed": not failures, "failures": failures,
        "load": {**load.__dict__, "order_violations": load.order_violations[:20]},
        "verdicts": verdicts, "samples": samples,
    }
    (out / "soak.json").write_text(json.dumps(report, indent=2))
    chart(samples, out / "soak.png",
          f"tickwire soak: {minutes:g} min, {clients} clients, {load.updates} updates")
    for name, metrics in verdicts.items():
        for metric, v in metrics.items():
            if "first" in v:
                print(f"  {name:9s} {metric:6s} {v['first']:8.1f} → {v['last']:8.1f} "
                      f"(max {v['max']:.1f}, slope {v['slope_per_min']:+.2f}/min, limit "
                      f"+{v['limit']:.1f}){'  GROWING' if v['growing'] else ''}")
    print(f"soak {'passed' if not failures else 'FAILED: ' + '; '.join(failures)} — "
          f"{out / 'soak.json'}, {out / 'soak.png'}", flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
