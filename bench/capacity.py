"""The capacity model of docs/capacity.md: how many edges, Redis shards and Kafka brokers a
market needs, from unit costs measured on this machine.

Unit costs come from two reports: a `make bench` JSON (`--from`, the edge's CPU per
delivered update and per tick taken in, its time per socket of a fan-out, its memory per
socket) and a `bench.redis_cost` JSON (`--redis-costs`, Redis's CPU per PUBLISH/SPUBLISH
and per delivery, the registry's CPU per heartbeat symbol). Everything else is a stated
assumption with a flag. `uv run --frozen python -m bench.capacity --help`.

The market: `--sockets` sockets each watch `--per-socket` distinct symbols drawn by Zipf
popularity (`--popularity`) from `--symbols`, as bench/workload.py draws them, and
`--tick-rate` ticks/s are spread over the symbols by `--tick-skew` (0: evenly, as in
`make bench`). Sockets are spread evenly over the edges (no affinity), so a symbol's
watchers on one edge are Poisson distributed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.workload import zipf_weights

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MIN_CLUSTER_PRIMARIES = 3  # redis-cli --cluster create refuses fewer


def inclusion(popularity: np.ndarray, per_socket: int) -> np.ndarray:
    """P(a socket watches symbol i) when it draws `per_socket` distinct symbols, one after
    another, each with probability ∝ `popularity` among those left (numpy's
    `choice(replace=False, p=...)`, what bench/workload.py does). The standard
    approximation of such successive sampling: 1 − exp(−λ pᵢ), with λ set so the
    probabilities add up to `per_socket` (tests/bench checks it against the real draw)."""
    low, high = 0.0, 1.0
    while (1 - np.exp(-high * popularity)).sum() < per_socket:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        if (1 - np.exp(-mid * popularity)).sum() < per_socket:
            low = mid
        else:
            high = mid
    return 1 - np.exp(-high * popularity)


def _shown(path: Path) -> str:
    """A path as the docs show it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class UnitCosts:
    """Measured: µs of CPU (or of time, for the fan-out) per unit."""

    edge_us_per_update: float  # edge CPU per delivered update, less its share of tick intake
    edge_system_us_per_update: float  # the kernel's part of it: mostly the socket write
    edge_us_per_tick: float  # edge CPU per tick taken in from Redis (the ingest trials)
    edge_us_per_socket_fanout: float  # time per socket for one tick's fan-out
    edge_kib_per_socket: float  # RSS per connection under load
    redis_us_per_publish: float  # one Redis: CPU per PUBLISH (no subscriber)
    redis_us_per_delivery: float  # one Redis: CPU per subscriber connection a tick reaches
    cluster_us_per_publish: float  # a cluster primary: CPU per SPUBLISH
    cluster_us_per_delivery: float
    registry_us_per_heartbeat_symbol: float  # Redis CPU to reconcile one symbol of a heartbeat
    registry_us_per_event: float  # Redis CPU per subscribe/unsubscribe event
    registry_ms_per_heartbeat: float  # the registry process's own CPU per heartbeat measured
    registry_heartbeat_symbols: int  # symbols in each heartbeat measured
    sources: tuple[str, str]

    @classmethod
    def load(cls, bench_path: Path, redis_path: Path) -> UnitCosts:
        bench, redis = json.loads(bench_path.read_text()), json.loads(redis_path.read_text())
        tw = bench["median"]["tickwire"]
        fanout_runs = [r for r in bench["runs"] if r["system"] == "tickwire" and r["kind"] == "fanout"]
        system = statistics.median(r["main"]["server_system_cpu_us_per_msg"] for r in fanout_runs)
        # The fan-out trials' CPU per update includes taking the ticks in (one per
        # `fanout` updates); the model counts that separately, per tick.
        per_update = tw["cpu_us_per_msg"] - tw["ingest_cpu_us_per_tick"] / bench["workload"]["fanout"]
        standalone, cluster = redis["modes"]["standalone"], redis["modes"]["cluster"]
        registry = standalone["registry"]
        return cls(
            edge_us_per_update=per_update, edge_system_us_per_update=system,
            edge_us_per_tick=tw["ingest_cpu_us_per_tick"],
            edge_us_per_socket_fanout=tw["fanout_us_per_socket"],
            edge_kib_per_socket=tw["rss_per_conn_load_kib"],
            redis_us_per_publish=standalone["fit"]["publish_us"],
            redis_us_per_delivery=standalone["fit"]["delivery_us"],
            cluster_us_per_publish=cluster["fit"]["publish_us"],
            cluster_us_per_delivery=cluster["fit"]["delivery_us"],
            registry_us_per_heartbeat_symbol=registry["redis_cpu_us_per_symbol"],
            registry_us_per_event=registry["redis_cpu_us_per_subscription_event"],
            registry_ms_per_heartbeat=registry["registry_cpu_ms_per_heartbeat"],
            registry_heartbeat_symbols=registry["symbols"],
            sources=(_shown(bench_path), _shown(redis_path)))


@dataclass(frozen=True)
class Market:
    sockets: int = 1_000_000
    per_socket: int = 20
    symbols: int = 10_000
    popularity: float = 1.0
    tick_rate: float = 2_000.0
    tick_skew: float = 0.0


@dataclass(frozen=True)
class Assumptions:
    edge_cores: float = 1.0  # one edge process (or worker) runs on one core
    edge_utilisation: float = 0.6
    hot_fanout_ms: float = 100.0
    redis_utilisation: float = 0.6
    session_minutes: float = 30.0
    heartbeat_seconds: float = 5.0
    symbol_bytes: float = 7.0  # a heartbeat's JSON per symbol: 4 letters, quotes, comma
    replication_factor: int = 3


class Demand:
    """The market's per-symbol figures (popularity order)."""

    def __init__(self, market: Market):
        self.market = market
        self.watch = inclusion(zipf_weights(market.symbols, market.popularity), market.per_socket)
        self.watchers = market.sockets * self.watch
        self.ticks = market.tick_rate * zipf_weights(market.symbols, market.tick_skew)
        self.updates_per_s = float((self.ticks * self.watchers).sum())

    def held(self, edges: int) -> np.ndarray:
        """P(an edge has a local watcher of symbol i): Poisson with mean watchers / edges."""
        return 1 - np.exp(-self.watchers / edges)


def edge_cpu_cores(m: Demand, edges: int, c: UnitCosts) -> float:
    ticks_in = float((m.ticks * m.held(edges)).sum())
    return (m.updates_per_s / edges * c.edge_us_per_update + ticks_in * c.edge_us_per_tick) / 1e6


def size(market: Market, c: UnitCosts, a: Assumptions) -> dict:
    """Edges, Redis shards and Kafka load for the market; every figure of the table."""
    m = Demand(market)
    budget = a.edge_cores * a.edge_utilisation
    edges_cpu = 1
    while edge_cpu_cores(m, edges_cpu, c) > budget:
        edges_cpu = max(edges_cpu + 1, int(edges_cpu * 1.05))
    while edges_cpu > 1 and edge_cpu_cores(m, edges_cpu - 1, c) <= budget:
        edges_cpu -= 1  # the step above may overshoot: walk back to the least that fits
    top = int(np.argmax(m.watchers))
    edges_latency = math.ceil(m.watchers[top] * c.edge_us_per_socket_fanout / (a.hot_fanout_ms * 1e3))
    edges = max(edges_cpu, edges_latency)
    held = m.held(edges)
    ticks_in = float((m.ticks * held).sum())
    deliveries = edges * ticks_in
    symbols_held = float(held.sum())

    def redis_cores(publish_us: float, delivery_us: float) -> float:
        return (market.tick_rate * publish_us + deliveries * delivery_us) / 1e6

    one_redis = redis_cores(c.redis_us_per_publish, c.redis_us_per_delivery)
    cluster_total = redis_cores(c.cluster_us_per_publish, c.cluster_us_per_delivery)
    # One Redis while it fits; else a cluster, which has at least 3 primaries.
    shards = (1 if one_redis <= a.redis_utilisation
              else max(MIN_CLUSTER_PRIMARIES, math.ceil(cluster_total / a.redis_utilisation)))
    # One symbol lives in one slot: its deliveries cannot be spread. With hashing, a
    # shard carries its 1/shards share plus, at worst, the hottest symbol whole.
    hot_symbol_cores = float(m.ticks[top] * edges * held[top] * c.cluster_us_per_delivery) / 1e6
    sockets_per_edge = market.sockets / edges

    # Kafka: an edge emits subscribe / unsubscribe only when its local count of a symbol
    # goes 0 -> 1 / 1 -> 0. Sockets come and go (mean session `session_minutes`), so a
    # symbol's local count is an M/M/inf queue of mean mᵢ: 0 -> 1 happens at (mᵢ / L)·e^-mᵢ.
    local = m.watchers / edges
    session_s = a.session_minutes * 60
    transitions = float(2 * edges * (local / session_s * np.exp(-local)).sum())
    subscription_changes = float(2 * m.watchers.sum() / session_s)
    heartbeats = edges / a.heartbeat_seconds
    heartbeat_bytes = symbols_held * a.symbol_bytes + 100
    registry_cores = (heartbeats * symbols_held * c.registry_us_per_heartbeat_symbol
                      + transitions * c.registry_us_per_event) / 1e6
    # The registry process's CPU per heartbeat was measured at one set size
    # (`registry_heartbeat_symbols`) and is used as it is, whatever the edges hold: an
    # assumption (docs/capacity.md says how it grows with the set).
    registry_process_cores = heartbeats * c.registry_ms_per_heartbeat / 1e3
    return {
        "market": asdict(market), "assumptions": asdict(a),
        "costs": {k: v for k, v in asdict(c).items()},
        "updates_per_s": m.updates_per_s,
        "top_symbol_watchers": float(m.watchers[top]),
        "least_symbol_watchers": float(m.watchers.min()),
        "edges": edges, "edges_for_cpu": edges_cpu, "edges_for_latency": edges_latency,
        "sockets_per_edge": sockets_per_edge,
        "edge_cpu_cores": edge_cpu_cores(m, edges, c),
        "edge_write_cores": m.updates_per_s / edges * c.edge_system_us_per_update / 1e6,
        "edge_rss_mib": sockets_per_edge * c.edge_kib_per_socket / 1024,
        "hot_fanout_ms": m.watchers[top] / edges * c.edge_us_per_socket_fanout / 1e3,
        "symbols_held_per_edge": symbols_held,
        "ticks_in_per_edge": ticks_in,
        "redis_deliveries_per_s": deliveries,
        "one_redis_cores": one_redis,
        "cluster_cores": cluster_total,
        "redis_shards": shards,
        "redis_shard_cores": one_redis if shards == 1 else cluster_total / shards,
        "hot_symbol_cores": hot_symbol_cores,
        "kafka_subscription_changes_per_s": subscription_changes,
        "kafka_transition_events_per_s": transitions,
        "kafka_event_per_change": transitions / subscription_changes if subscription_changes else 0.0,
        "kafka_heartbeats_per_s": heartbeats,
        "kafka_heartbeat_bytes": heartbeat_bytes,
        "kafka_bytes_per_s": heartbeats * heartbeat_bytes + transitions * 120,
        "kafka_brokers": a.replication_factor,
        "registry_redis_cores": registry_cores,
        "registry_process_cores": registry_process_cores,
        # The heartbeat interval that would leave the events room on the registry's shard
        # (0: the subscription events alone do not fit).
        "registry_heartbeat_seconds_to_fit": (
            edges * symbols_held * c.registry_us_per_heartbeat_symbol / 1e6 / event_room
            if (event_room := a.redis_utilisation - transitions * c.registry_us_per_event / 1e6) > 0
            else 0.0),
    }


def _n(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def render(r: dict) -> str:
    """The table of docs/capacity.md, as text."""
    mk, a, c = r["market"], r["assumptions"], r["costs"]
    if r["hot_symbol_cores"] > a["redis_utilisation"]:
        redis_limit = (f"NO shard count fits: the hottest symbol is one slot and alone needs "
                       f"{r['hot_symbol_cores']:.2f} cores")
    else:
        redis_limit = "CPU of deliveries = edges x ticks of the symbols they hold"
    if r["registry_redis_cores"] <= a["redis_utilisation"]:
        registry_limit = "fits"
    elif r["registry_heartbeat_seconds_to_fit"] > 0:
        registry_limit = (f"over the budget: heartbeats every "
                          f"{_n(r['registry_heartbeat_seconds_to_fit'])} s would fit")
    else:
        registry_limit = "over the budget: subscription events alone exceed it"
    lines = [
        f"market: {mk['sockets']:,} sockets x {mk['per_socket']} of {mk['symbols']:,} symbols "
        f"(Zipf {mk['popularity']:g}), {mk['tick_rate']:,.0f} ticks/s (tick skew {mk['tick_skew']:g})",
        f"  updates/s to deliver: {_n(r['updates_per_s'])}; top symbol watched by "
        f"{_n(r['top_symbol_watchers'])} sockets, least by {_n(r['least_symbol_watchers'])}",
        f"unit costs: edge {c['edge_us_per_update']:.2f} us/update ({c['edge_system_us_per_update']:.2f} "
        f"in the kernel), {c['edge_us_per_tick']:.2f} us/tick in, {c['edge_us_per_socket_fanout']:.2f} "
        f"us/socket of fan-out, {c['edge_kib_per_socket']:.1f} KiB/socket; Redis "
        f"{c['redis_us_per_publish']:.2f} us/PUBLISH + {c['redis_us_per_delivery']:.3f} us/delivery, "
        f"cluster {c['cluster_us_per_publish']:.2f} us/SPUBLISH + {c['cluster_us_per_delivery']:.3f} "
        f"us/delivery; registry {c['registry_us_per_heartbeat_symbol']:.3f} us/heartbeat symbol, "
        f"{c['registry_us_per_event']:.1f} us/event",
        f"  from {c['sources'][0]} and {c['sources'][1]}",
        "",
        "| part | count | load per unit | first limit |",
        "|---|---|---|---|",
        f"| edges ({a['edge_cores']:g} core, <= {a['edge_utilisation']:.0%}) | **{r['edges']:,}** "
        f"(CPU needs {r['edges_for_cpu']:,}, hot fan-out <= {a['hot_fanout_ms']:g} ms needs "
        f"{r['edges_for_latency']:,}) | {_n(r['sockets_per_edge'])} sockets, "
        f"{_n(r['updates_per_s'] / r['edges'])} updates/s, {r['edge_cpu_cores']:.2f} cores "
        f"({r['edge_write_cores']:.2f} in socket writes), {_n(r['edge_rss_mib'])} MiB, "
        f"{_n(r['ticks_in_per_edge'])} ticks/s in over {_n(r['symbols_held_per_edge'])} symbols, "
        f"hot tick reaches all in {r['hot_fanout_ms']:.0f} ms | "
        f"{'hot-symbol fan-out latency' if r['edges_for_latency'] > r['edges_for_cpu'] else 'CPU'} |",
        f"| Redis shards (<= {a['redis_utilisation']:.0%} of a core) | **{r['redis_shards']}** "
        f"(one Redis would need {r['one_redis_cores']:.2f} cores) | "
        f"{_n(r['redis_deliveries_per_s'] / r['redis_shards'])} deliveries/s, "
        f"{r['redis_shard_cores']:.2f} cores (the hottest symbol alone {r['hot_symbol_cores']:.3f}) | "
        f"{redis_limit} |",
        f"| registry's slot (one shard) | 1 | {_n(r['kafka_heartbeats_per_s'])} heartbeats/s x "
        f"{_n(r['symbols_held_per_edge'])} symbols: {r['registry_redis_cores']:.2f} cores | "
        f"{registry_limit} |",
        f"| registry replicas (1 core each) | {r['registry_process_cores'] / a['edge_utilisation']:,.0f} "
        f"at <= {a['edge_utilisation']:.0%} | {_n(r['kafka_heartbeats_per_s'])} heartbeats/s: "
        f"{r['registry_process_cores']:.1f} cores | heartbeat processing (Python side) |",
        f"| Kafka brokers | **{r['kafka_brokers']}** (replication {a['replication_factor']}) | "
        f"{_n(r['kafka_subscription_changes_per_s'])} socket subscription changes/s -> "
        f"{_n(r['kafka_transition_events_per_s'])} events/s ({r['kafka_event_per_change']:.2g} per change), "
        f"{_n(r['kafka_heartbeats_per_s'])} heartbeats/s of {r['kafka_heartbeat_bytes'] / 1024:.0f} KiB: "
        f"{r['kafka_bytes_per_s'] / 2**20:.1f} MiB/s | heartbeat bytes (not measured against a broker) |",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--from", dest="bench", type=Path, default=RESULTS / "latest.json",
                   help="a make bench report")
    p.add_argument("--redis-costs", type=Path, default=RESULTS / "redis-cost-latest.json",
                   help="a python -m bench.redis_cost report")
    p.add_argument("--json", type=Path, help="also write every figure here")
    for group, cls in (("market", Market), ("assumptions", Assumptions)):
        g = p.add_argument_group(group)
        for name, value in asdict(cls()).items():
            g.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    values = vars(args)
    market = Market(**{k: values[k] for k in asdict(Market())})
    assumptions = Assumptions(**{k: values[k] for k in asdict(Assumptions())})
    result = size(market, UnitCosts.load(args.bench, args.redis_costs), assumptions)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
