"""Redis's unit costs for the capacity model: CPU per tick published and per delivery to a
subscriber connection, on one Redis and on a 3-primary Redis Cluster, and the registry's
CPU per symbol of an edge heartbeat.

A trial publishes ticks (msgpack, the size of a real tick) at `--rate` per second over
`--channels` tick channels while N subscriber connections (one per simulated edge; on the
cluster, one per edge and primary, as the edge's sharded reader holds them) watch every
channel, and reads the Redis processes' CPU from /proc/<pid>/stat over `--seconds`. The
CPU per tick against N is a line: its intercept is the cost of a PUBLISH (SPUBLISH on the
cluster) and its slope the cost of one delivery. Subscribers are raw sockets that count
the bytes they receive, so every delivery is checked (`received_ratio`).

The registry figure runs `RegistryState.apply` (the registry's own script) with an
`edge_heartbeat` of `--heartbeat-symbols` symbols the edge already holds, as in steady
state, and divides Redis's CPU by the symbols reconciled.

The machine is shared: `foreign_cpu_cores` is what else ran meanwhile (as bench/run.py
records it). `uv run --frozen python -m bench.redis_cost --help` for the flags; the
report goes to bench/results/redis-cost-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import msgpack
import numpy as np
import redis as sync_redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from bench.cpu import machine_busy_seconds, process_cpu_seconds
from bench.workload import symbol_names
from tickwire.core import names
from tickwire.core.events import SubscriptionEvent, SubscriptionEventType
from tickwire.localstack import free_port, start_redis
from tickwire.localstack.cluster import start_redis_cluster
from tickwire.localstack.ports import free_node_ports
from tickwire.registry.state import RegistryState

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.redis_cost", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rate", type=float, default=2000.0,
                   help="ticks published per second (2,000: the capacity model's market, so each "
                        "subscriber connection sees the rate an edge would)")
    p.add_argument("--channels", type=int, default=300, help="tick channels (symbols)")
    p.add_argument("--subscribers", default="0,4,8,16",
                   help="comma-separated subscriber connections (edges) per trial")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per trial")
    p.add_argument("--repeats", type=int, default=2, help="trials per subscriber count (all fitted)")
    p.add_argument("--modes", default="standalone,cluster", help="comma-separated subset")
    p.add_argument("--heartbeat-symbols", type=int, default=10_000,
                   help="symbols in each measured edge_heartbeat (0 skips the registry figure)")
    p.add_argument("--heartbeats", type=int, default=10, help="heartbeats measured")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "redis-cost-latest.json")
    args = p.parse_args(argv)
    args.subscribers = sorted({int(x) for x in args.subscribers.split(",") if x})
    args.modes = [m for m in args.modes.split(",") if m]
    if set(args.modes) - {"standalone", "cluster"}:
        p.error("--modes takes standalone and/or cluster")
    if len(args.subscribers) < 2:
        p.error("--subscribers needs at least two values to fit a line")
    return args


def tick_payload() -> bytes:
    """A msgpack tick shaped like the ingestor's (and bench/injector.py's)."""
    return msgpack.packb({
        "symbol": "AAAA",
        "data": {"symbol": "AAAA", "price": 123.45, "change": 1.23, "changePercent": 1.0066,
                 "volume": 1234567, "high": 124.0, "low": 122.5, "open": 122.9,
                 "previousClose": 122.22, "timestamp": "2026-01-01T00:00:00.000Z",
                 "source": "bench"},
        "seq": 2**31, "epoch": "0123abcd", "publishedAt": 2**63})


def _bulk(part: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(part), part)


def command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(_bulk(p) for p in parts)


class Subscribers:
    """Raw subscriber sockets drained by one thread; counts the bytes each receives."""

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.received = 0
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def connect(self, port: int, verb: bytes, channels: list[bytes]) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"".join(command(verb, c) for c in channels))  # one channel per command:
        sock.setblocking(False)  # SSUBSCRIBE of several channels must share a slot
        self.socks.append(sock)
        self._selector.register(sock, selectors.EVENT_READ)

    def start(self) -> None:
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.05):
                try:
                    data = key.fileobj.recv(1 << 20)
                except BlockingIOError:
                    continue
                self.received += len(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            self._selector.unregister(sock)
            sock.close()


class Publisher:
    """Pipelines the due ticks once per millisecond, one socket per primary."""

    def __init__(self, routes: dict[int, list[bytes]], verb: bytes, payload: bytes):
        self.socks = {port: socket.create_connection(("127.0.0.1", port)) for port in routes}
        self.frames = [(port, command(verb, channel, payload))
                       for port, channels in routes.items() for channel in channels]
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, rate: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(rate,), daemon=True)
        self._thread.start()

    def _run(self, rate: float) -> None:
        started, frames = time.perf_counter(), self.frames
        while not self._stop.is_set():
            due = int((time.perf_counter() - started) * rate) - self.sent
            if due > 0:
                batches: dict[int, list[bytes]] = {}
                for i in range(self.sent, self.sent + due):
                    port, frame = frames[i % len(frames)]
                    batches.setdefault(port, []).append(frame)
                for port, batch in batches.items():
                    self.socks[port].sendall(b"".join(batch))
                self.sent += due
            self._discard_replies()
            time.sleep(0.001)

    def _discard_replies(self) -> None:
        for sock in self.socks.values():
            try:
                while sock.recv(1 << 20, socket.MSG_DONTWAIT):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in self.socks.values():
            sock.close()


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(0.1)


def fanout_trial(primaries: dict[int, int], replicas: dict[int, int], cluster: bool,
                 channels: list[bytes], subscribers: int, rate: float, seconds: float) -> dict:
    """One measured window: `subscribers` edges watching every channel, `rate` ticks/s.
    `primaries` / `replicas`: port -> Redis PID."""
    routes: dict[int, list[bytes]] = {}
    if cluster:
        with sync_redis.Redis(port=next(iter(primaries)), socket_timeout=5) as client:
            slots = client.execute_command("CLUSTER SLOTS")
        for channel in channels:
            slot = key_slot(channel)
            port = next(int(p[1]) for start, end, p, *_ in slots if start <= slot <= end)
            routes.setdefault(port, []).append(channel)
    else:
        routes = {next(iter(primaries)): channels}
    verb_sub, verb_pub = (b"SSUBSCRIBE", b"SPUBLISH") if cluster else (b"SUBSCRIBE", b"PUBLISH")
    subs = Subscribers()
    publisher: Publisher | None = None
    try:
        for _ in range(subscribers):
            for port, owned in routes.items():
                subs.connect(port, verb_sub, owned)
        subs.start()

        def subscribed() -> bool:
            for port, owned in routes.items():
                with sync_redis.Redis(port=port, socket_timeout=5) as client:
                    counts = client.execute_command(
                        "PUBSUB", "SHARDNUMSUB" if cluster else "NUMSUB", *owned)
                if any(int(n) != subscribers for n in counts[1::2]):
                    return False
            return True

        _wait(subscribed, 60, f"{subscribers} subscribers on every channel")
        pids = {**primaries, **replicas}
        # Redis's own timers (serverCron, replication pings) cost CPU at rest: measured
        # first and taken off, so the costs below are the ticks' alone.
        idle0 = sum(process_cpu_seconds(pid) for pid in primaries.values())
        idle_t0 = time.monotonic()
        time.sleep(1.0)
        idle_cores = ((sum(process_cpu_seconds(pid) for pid in primaries.values()) - idle0)
                      / (time.monotonic() - idle_t0))
        payload = tick_payload()
        publisher = Publisher(routes, verb_pub, payload)
        publisher.start(rate)
        time.sleep(1.0)  # warm-up
        cpu0 = {port: process_cpu_seconds(pid) for port, pid in pids.items()}
        busy0, own0, sent0, got0, t0 = (machine_busy_seconds(), process_cpu_seconds(os.getpid()),
                                        publisher.sent, subs.received, time.monotonic())
        time.sleep(seconds)
        cpu1 = {port: process_cpu_seconds(pid) for port, pid in pids.items()}
        busy1, own1, sent1, got1, t1 = (machine_busy_seconds(), process_cpu_seconds(os.getpid()),
                                        publisher.sent, subs.received, time.monotonic())
    finally:
        if publisher is not None:
            publisher.close()
        subs.close()
    span = t1 - t0
    published = sent1 - sent0
    frame = len(command(b"smessage" if cluster else b"message", channels[0], payload))
    expected = published * subscribers
    cpu = {port: cpu1[port] - cpu0[port] for port in pids}
    primary_cpu = sum(cpu[p] for p in primaries)
    tick_cpu = primary_cpu - idle_cores * span
    known = sum(cpu.values()) + (own1 - own0)
    return {
        "subscribers": subscribers,
        "seconds": round(span, 3),
        "ticks_per_s": round(published / span, 1),
        "deliveries_per_s": round(expected / span, 1),
        "received_ratio": round((got1 - got0) / frame / expected, 4) if expected else None,
        "primary_cpu_cores": round(primary_cpu / span, 4),
        "primary_cpu_cores_each": {str(p): round(cpu[p] / span, 4) for p in primaries},
        "primary_idle_cpu_cores": round(idle_cores, 4),
        "replica_cpu_cores": round(sum(cpu[p] for p in replicas) / span, 4),
        # Primaries' CPU above their idle rate, per tick published.
        "primary_cpu_us_per_tick": round(tick_cpu * 1e6 / published, 3) if published else None,
        "runner_cpu_cores": round((own1 - own0) / span, 4),
        "foreign_cpu_cores": round((busy1 - busy0 - known) / span, 3),
    }


def fit(trials: list[dict]) -> dict:
    """CPU-µs per tick = publish + subscribers × delivery (least squares)."""
    n = np.array([t["subscribers"] for t in trials], dtype=float)
    y = np.array([t["primary_cpu_us_per_tick"] for t in trials], dtype=float)
    slope, intercept = np.polyfit(n, y, 1)
    residual = y - (intercept + slope * n)
    return {"publish_us": round(float(intercept), 3), "delivery_us": round(float(slope), 4),
            "max_residual_us": round(float(np.abs(residual).max()), 3)}


async def heartbeat_cost(port: int, pid: int, symbols: int, heartbeats: int) -> dict:
    """Redis CPU of the registry's own APPLY script for steady-state heartbeats."""
    client = aioredis.Redis(port=port)
    try:
        state = RegistryState(client, tombstone_seconds=3600)
        held = tuple(symbol_names(symbols))
        ts = int(time.time() * 1000)
        await state.apply(SubscriptionEvent(SubscriptionEventType.EDGE_HEARTBEAT, "edge-a",
                                            symbols=held, ts=ts), ts)
        cpu0, busy0, t0 = process_cpu_seconds(pid), machine_busy_seconds(), time.monotonic()
        own0 = process_cpu_seconds(os.getpid())
        for i in range(1, heartbeats + 1):
            await state.apply(SubscriptionEvent(SubscriptionEventType.EDGE_HEARTBEAT, "edge-a",
                                                symbols=held, ts=ts + i), ts + i)
        cpu1, busy1, t1 = process_cpu_seconds(pid), machine_busy_seconds(), time.monotonic()
        own1 = process_cpu_seconds(os.getpid())
        subscribe_cpu0 = process_cpu_seconds(pid)
        events = 2000
        for i in range(events):
            kind = SubscriptionEventType.SUBSCRIBE if i % 2 == 0 else SubscriptionEventType.UNSUBSCRIBE
            await state.apply(SubscriptionEvent(kind, "edge-b", symbol=held[i % symbols],
                                                ts=ts + heartbeats + 1 + i), ts)
        subscribe_cpu1 = process_cpu_seconds(pid)
    finally:
        await client.aclose()
    redis_s = cpu1 - cpu0
    return {"symbols": symbols, "heartbeats": heartbeats, "seconds": round(t1 - t0, 3),
            "redis_cpu_ms_per_heartbeat": round(redis_s * 1e3 / heartbeats, 3),
            "redis_cpu_us_per_symbol": round(redis_s * 1e6 / heartbeats / symbols, 4),
            # The registry's own side of it (this process runs the same code a replica does).
            "registry_cpu_ms_per_heartbeat": round((own1 - own0) * 1e3 / heartbeats, 1),
            "subscription_events": events,
            "redis_cpu_us_per_subscription_event": round(
                (subscribe_cpu1 - subscribe_cpu0) * 1e6 / events, 2),
            "foreign_cpu_cores": round((busy1 - busy0 - redis_s - (own1 - own0)) / (t1 - t0), 3)}


def run_mode(mode: str, args: argparse.Namespace, workdir: Path) -> dict:
    channels = [names.tick_channel(s).encode() for s in symbol_names(args.channels)]
    if mode == "standalone":
        port = free_port()
        server = start_redis(port, workdir / "redis")
        try:
            primaries, replicas = {port: server.pid}, {}
            trials = [fanout_trial(primaries, replicas, False, channels, n, args.rate, args.seconds)
                      for _ in range(args.repeats) for n in args.subscribers]
            heartbeat = (asyncio.run(heartbeat_cost(port, server.pid, args.heartbeat_symbols,
                                                    args.heartbeats))
                         if args.heartbeat_symbols else None)
        finally:
            server.stop()
        return {"shards": 1, "trials": trials, "fit": fit(trials), "registry": heartbeat}
    cluster = start_redis_cluster(free_node_ports(6), workdir / "cluster")
    try:
        primary_ports = cluster.primaries()
        primaries = {p: cluster.nodes[p].pid for p in primary_ports}
        replicas = {p: n.pid for p, n in cluster.nodes.items() if p not in primaries}
        trials = [fanout_trial(primaries, replicas, True, channels, n, args.rate, args.seconds)
                  for _ in range(args.repeats) for n in args.subscribers]
    finally:
        cluster.stop()
    return {"shards": len(primaries), "trials": trials, "fit": fit(trials)}


def write_report(report: dict, out: Path) -> None:
    """The report as JSON, with the load average at its end."""
    report["machine"]["load_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {out}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tickwire-redis-cost-"))
    report = {"schema": 1, "started_utc": datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"),
              "command": "uv run --frozen python -m bench.redis_cost " + " ".join(
                  sys.argv[1:] if argv is None else argv),
              "machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg()},
              "config": {"rate": args.rate, "channels": args.channels,
                         "subscribers": args.subscribers, "seconds": args.seconds,
                         "repeats": args.repeats,
                         "tick_bytes": len(tick_payload())},
              "modes": {}}
    try:
        for mode in args.modes:
            result = run_mode(mode, args, workdir)
            report["modes"][mode] = result
            for t in result["trials"]:
                print(f"  {mode:10} {t['subscribers']:>3} subscribers: {t['ticks_per_s']:>7.0f} "
                      f"ticks/s, {t['deliveries_per_s']:>8.0f} deliveries/s (received "
                      f"{t['received_ratio']}), primaries {t['primary_cpu_cores']} cores "
                      f"{t['primary_cpu_cores_each']}, replicas {t['replica_cpu_cores']}, "
                      f"{t['primary_cpu_us_per_tick']} us/tick, foreign {t['foreign_cpu_cores']}",
                      flush=True)
            f = result["fit"]
            print(f"  {mode:10} fit: {f['publish_us']} us per publish + {f['delivery_us']} us "
                  f"per delivery (largest residual {f['max_residual_us']} us)", flush=True)
            if result.get("registry"):
                r = result["registry"]
                print(f"  registry: {r['redis_cpu_ms_per_heartbeat']} ms Redis CPU per heartbeat "
                      f"of {r['symbols']} symbols = {r['redis_cpu_us_per_symbol']} us per symbol "
                      f"(the registry's own CPU: {r['registry_cpu_ms_per_heartbeat']} ms); "
                      f"{r['redis_cpu_us_per_subscription_event']} us per subscribe/unsubscribe",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
