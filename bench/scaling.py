"""The capacity model's slopes, measured at small scale: 1, 2, 3 edges on one Redis and on
a 3-primary Redis Cluster (`tickwire.localstack`'s cluster starter: 3 primaries, each with
a replica).

One trial per (shards, edges): the edges run side by side with no proxy in front, and the
clients of one workload (bench/workload.py) are spread over them round-robin; the tick
injector (bench/injector.py, SPUBLISH to each symbol's primary on the cluster) publishes
`--rate` ticks/s and the load generators (bench/loadgen.py) hold the sockets. For the
measured window it records what the model predicts and what it measures:
- Redis deliveries per tick: the edges subscribed to each channel (PUBSUB NUMSUB, or
  SHARDNUMSUB on each primary) weighed by the ticks each symbol got; it grows with the
  edges, as `1 - exp(-watchers / edges)` per symbol predicts (`predicted_deliveries_per_tick`);
- edge CPU per delivered update (all edges together): flat in the number of edges;
- Redis CPU per primary (from /proc, as bench/redis_cost.py reads it): the cluster spreads it.
The machine is shared, so `foreign_cpu_cores` (what else ran) is recorded as bench/run.py
does. `uv run --frozen python -m bench.scaling --help`; the report goes to
bench/results/scaling-latest.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import redis as sync_redis
from redis.crc import key_slot

from bench import injector, loadgen
from bench.analysis import Joined
from bench.capacity import inclusion
from bench.cpu import cpu_seconds, machine_busy_seconds, process_cpu_seconds
from bench.redis_cost import write_report
from bench.run import Child, raise_fd_limit
from bench.workload import Workload, zipf_weights
from tickwire.core import names
from tickwire.localstack import ServiceLauncher, free_port, start_kafka, start_redis
from tickwire.localstack.cluster import start_redis_cluster
from tickwire.localstack.ports import free_node_ports

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clients", type=int, default=600)
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--per-client", type=int, default=20)
    p.add_argument("--popularity", type=float, default=1.0)
    p.add_argument("--rate", type=float, default=400.0, help="ticks/s, spread evenly over the symbols")
    p.add_argument("--edges", default="1,2,3", help="comma-separated edge counts")
    p.add_argument("--shards", default="1,3", help="1 (one Redis) and/or 3 (a Redis Cluster)")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per trial")
    p.add_argument("--drain", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scaling-latest.json")
    args = p.parse_args(argv)
    args.edges = [int(x) for x in args.edges.split(",") if x]
    args.shards = [int(x) for x in args.shards.split(",") if x]
    if set(args.shards) - {1, 3}:
        p.error("--shards takes 1 and/or 3")
    return args


class Redis:
    """One Redis, or the cluster: the primaries' ports and PIDs, and where a symbol lives."""

    def __init__(self, shards: int, workdir: Path):
        self.cluster = None
        if shards == 1:
            port = free_port()
            self.server = start_redis(port, workdir / "redis")
            self.primaries = {port: self.server.pid}
            self.replicas: dict[int, int] = {}
        else:
            self.cluster = start_redis_cluster(free_node_ports(6), workdir / "cluster")
            ports = self.cluster.primaries()
            self.primaries = {p: self.cluster.nodes[p].pid for p in ports}
            self.replicas = {p: n.pid for p, n in self.cluster.nodes.items() if p not in ports}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{next(iter(self.primaries))}/0"

    def ports_of(self, symbols: list[str]) -> list[int] | None:
        """The primary of each symbol's slot (None on one Redis)."""
        if self.cluster is None:
            return None
        with sync_redis.Redis(port=next(iter(self.primaries)), socket_timeout=5) as client:
            slots = client.execute_command("CLUSTER SLOTS")
        return [next(int(p[1]) for start, end, p, *_ in slots
                     if start <= key_slot(names.tick_channel(s).encode()) <= end) for s in symbols]

    def subscribed_edges(self, symbols: list[str], ports: list[int] | None) -> np.ndarray:
        """How many subscriber connections each tick channel has now (one per edge)."""
        counts = np.zeros(len(symbols), dtype=np.int64)
        by_port: dict[int, list[int]] = {}
        for i in range(len(symbols)):
            by_port.setdefault(ports[i] if ports else next(iter(self.primaries)), []).append(i)
        for port, indexes in by_port.items():
            with sync_redis.Redis(port=port, socket_timeout=5) as client:
                reply = client.execute_command(
                    "PUBSUB", "SHARDNUMSUB" if ports else "NUMSUB",
                    *(names.tick_channel(symbols[i]) for i in indexes))
            counts[indexes] = [int(n) for n in reply[1::2]]
        return counts

    def cpu(self) -> dict[int, float]:
        nodes = {**self.primaries, **self.replicas}
        return {port: process_cpu_seconds(pid) for port, pid in nodes.items()}

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        else:
            self.server.stop()


def assigned_edges(workload: Workload, edges: int) -> np.ndarray:
    """Per symbol, how many edges have a client of it when client i is on edge i % edges."""
    counts = np.zeros(len(workload.symbols), dtype=np.int64)
    for e in range(edges):
        held = set().union(*workload.subscriptions[e::edges])
        counts[sorted(held)] += 1
    return counts


def trial(redis: Redis, kafka_bootstrap: str, edges: int, workload: Workload,
          args: argparse.Namespace, workdir: Path) -> dict:
    launcher = ServiceLauncher(redis.url, kafka_bootstrap, workdir,
                               {"TICKWIRE_REDIS_MODE": "cluster" if redis.cluster else "standalone"})
    big = str(max(10 * args.clients, 1000))
    servers, ports, inject, loaders = [], [], None, []
    symbols = workload.symbols
    routes = redis.ports_of(symbols)
    try:
        for e in range(edges):
            port = free_port()
            servers.append(launcher.edge(
                port, f"scale-{len(redis.primaries)}-{edges}-{e}",
                TICKWIRE_EDGE_MAX_CONNECTIONS_PER_IP=big,
                TICKWIRE_EDGE_CONNECTIONS_PER_SECOND_PER_IP=big,
                TICKWIRE_EDGE_CONNECTION_BURST_PER_IP=big, TICKWIRE_EDGE_DRAIN_SECONDS="0",
                TICKWIRE_LOG_FORMAT="text"))
            ports.append(port)
        inject = Child("injector", injector.main, "127.0.0.1", next(iter(redis.primaries)), symbols,
                       workload.tick_weights.tolist(), uuid.uuid4().hex[:8], args.seed, routes)
        inject.conn.send(("prime",))
        inject.expect("primed")
        # Client i goes to edge i % edges: no proxy, every edge a share of every popularity.
        specs = [[] for _ in range(edges)]
        for ident, subs in enumerate(workload.subscriptions):
            specs[ident % edges].append((ident, [symbols[i] for i in subs]))
        loaders = [Child(f"loader-{e}", loadgen.main, "127.0.0.1", ports[e], spec, symbols,
                         False, 50, None) for e, spec in enumerate(specs)]
        for loader in loaders:
            loader.expect("ready")
        for loader in loaders:
            loader.conn.send(("connect",))
        connected = sorted(c for loader in loaders for c in loader.expect("connected")[1]["connected"])
        # Redis's and the edges' own timers at rest, to tell them from the ticks' cost.
        edge_pids = [server.pid for server in servers]
        idle0, edge_idle0, idle_t0 = (sum(redis.cpu()[p] for p in redis.primaries),
                                      sum(cpu_seconds(pid) for pid in edge_pids), time.monotonic())
        time.sleep(2.0)
        idle_s = time.monotonic() - idle_t0
        idle = (sum(redis.cpu()[p] for p in redis.primaries) - idle0) / idle_s
        edge_idle = (sum(cpu_seconds(pid) for pid in edge_pids) - edge_idle0) / idle_s
        inject.conn.send(("rate", args.rate))
        time.sleep(args.warmup)
        holding = redis.subscribed_edges(symbols, routes)
        pids = {"edges": [s.pid for s in servers], "loaders": [c.pid for c in loaders],
                "injector": [inject.pid], "kafka": [], "runner": [os.getpid()]}

        def sample() -> dict:
            return {"t": time.time_ns(), "redis": redis.cpu(), "busy": machine_busy_seconds(),
                    "edges_system": sum(cpu_seconds(p, "system") for p in pids["edges"]),
                    **{k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}}

        before = sample()
        time.sleep(args.duration)
        after = sample()
        time.sleep(args.drain)
        recs = []
        for loader in loaders:
            loader.conn.send(("mark",))
        for loader in loaders:
            _, clients, keys, times, _counters = loader.expect("mark")
            recs.append((clients, keys, times))
        inject.conn.send(("mark",))
        _, pub_keys, pub_times, redis_errors, _cpu = inject.expect("mark")
    finally:
        if inject is not None and inject.process.is_alive():
            try:
                inject.conn.send(("stop",))
                inject.expect("mark", 30)
            except (OSError, RuntimeError, EOFError):
                pass
        for loader in loaders:
            if loader.process.is_alive():
                try:
                    loader.conn.send(("finish",))
                    loader.expect("mark", 30)
                except (OSError, RuntimeError, EOFError):
                    pass
        for child in ([inject] if inject else []) + loaders:
            child.stop()
        for server in servers:
            server.stop()

    joined = Joined(np.frombuffer(pub_keys, np.int64), np.frombuffer(pub_times, np.int64),
                    np.concatenate([np.frombuffer(c, np.int32) for c, _, _ in recs]),
                    np.concatenate([np.frombuffer(k, np.int64) for _, k, _ in recs]),
                    np.concatenate([np.frombuffer(t, np.int64) for _, _, t in recs]),
                    len(symbols), len(workload.subscriptions))
    t0, t1 = before["t"], after["t"]
    seconds = (t1 - t0) / 1e9
    sub_client = np.array([c for c in connected for _ in workload.subscriptions[c]], dtype=np.int64)
    sub_sym = np.array([s for c in connected for s in workload.subscriptions[c]], dtype=np.int64)
    accounting = joined.accounting(t0, t1, time.time_ns(), sub_client, sub_sym, None)
    in_window = (joined.pub_t >= t0) & (joined.pub_t < t1)
    ticks = np.bincount(joined.pub_key[in_window] >> 32, minlength=len(symbols))
    published = int(ticks.sum())
    received = joined.received_between(t0, t1)
    redis_cpu = {port: after["redis"][port] - before["redis"][port] for port in before["redis"]}
    primary_cpu = {port: redis_cpu[port] for port in redis.primaries}
    deliveries = int((ticks * holding).sum())
    # The model's prediction for this small market (bench/capacity.py, sockets spread evenly).
    watch = inclusion(zipf_weights(len(symbols), args.popularity), args.per_client) * args.clients
    predicted = float((workload.tick_weights * edges * (1 - np.exp(-watch / edges))).sum())
    known = (sum(redis_cpu.values()) + sum(after[k] - before[k] for k in pids))
    edge_cpu = after["edges"] - before["edges"]
    return {
        "shards": len(redis.primaries), "edges": edges,
        "clients": len(workload.subscriptions), "connected": len(connected),
        "seconds": round(seconds, 3),
        "ticks_per_s": round(published / seconds, 1),
        "updates_per_s": round(received / seconds, 1),
        "delivery_ratio": accounting["delivery_ratio"], "lost": accounting["lost"],
        "gaps": accounting["gaps"], "injector_redis_errors": redis_errors,
        "unmatched_updates": joined.unmatched,
        "edges_holding_mean": round(float((holding * workload.tick_weights).sum()), 3),
        "edges_holding_assigned": round(float((workload.tick_weights
                                               * assigned_edges(workload, edges)).sum()), 3),
        "redis_deliveries_per_s": round(deliveries / seconds, 1),
        "redis_deliveries_per_tick": round(deliveries / published, 3) if published else None,
        "predicted_deliveries_per_tick": round(predicted, 3),
        "edge_cpu_cores": round(edge_cpu / seconds, 3),
        "edge_cpu_us_per_update": round(edge_cpu * 1e6 / received, 2) if received else None,
        "edge_idle_cpu_cores": round(edge_idle, 3),
        "edge_cpu_us_per_update_less_idle": round((edge_cpu - edge_idle * seconds) * 1e6 / received, 2)
        if received else None,
        "edge_system_us_per_update": round((after["edges_system"] - before["edges_system"]) * 1e6
                                           / received, 2) if received else None,
        "redis_primary_cpu_cores": {str(p): round(v / seconds, 4) for p, v in primary_cpu.items()},
        "redis_primary_cpu_cores_total": round(sum(primary_cpu.values()) / seconds, 4),
        "redis_replica_cpu_cores": round(sum(redis_cpu[p] for p in redis.replicas) / seconds, 4),
        "redis_idle_cpu_cores": round(idle, 4),
        # The primaries' CPU above their idle rate, per tick published.
        "redis_cpu_us_per_tick": round((sum(primary_cpu.values()) - idle * seconds) * 1e6
                                       / published, 2) if published else None,
        "loader_cpu_cores": round((after["loaders"] - before["loaders"]) / seconds, 3),
        "foreign_cpu_cores": round((after["busy"] - before["busy"] - known) / seconds, 3),
        "load_average": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit(args.clients)
    workload = Workload.build(clients=args.clients, symbols=args.symbols, per_client=args.per_client,
                              popularity=args.popularity, tick_skew=0.0, seed=args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="tickwire-scaling-"))
    report = {"schema": 1, "started_utc": datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"),
              "command": "uv run --frozen python -m bench.scaling " + " ".join(
                  sys.argv[1:] if argv is None else argv),
              "machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg()},
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "workload": {"fanout": round(workload.fanout(), 2),
                           "top_symbol_watchers": int(workload.watchers().max())},
              "trials": []}
    kafka = None
    try:
        kafka_port = free_port()
        kafka = start_kafka(kafka_port, free_port(), workdir / "kafka")
        kafka_bootstrap = f"127.0.0.1:{kafka_port}"
        for shards in args.shards:
            redis = Redis(shards, workdir / f"redis-{shards}")
            try:
                for edges in args.edges:
                    result = trial(redis, kafka_bootstrap, edges, workload, args, workdir)
                    report["trials"].append(result)
                    print(f"  {shards} shard(s), {edges} edge(s): {result['ticks_per_s']:.0f} ticks/s, "
                          f"{result['updates_per_s']:.0f} updates/s (delivered "
                          f"{result['delivery_ratio']}), Redis {result['redis_deliveries_per_tick']} "
                          f"deliveries/tick (model {result['predicted_deliveries_per_tick']}), "
                          f"edges {result['edge_cpu_us_per_update']} cpu-us/update, Redis primaries "
                          f"{result['redis_primary_cpu_cores']} cores, foreign "
                          f"{result['foreign_cpu_cores']}", flush=True)
            finally:
                redis.stop()
    finally:
        if kafka is not None:
            kafka.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
