"""The capacity model (bench/capacity.py) and its two measuring tools, with small numbers:
the model's arithmetic against the real workload draw, and bench.redis_cost and
bench.scaling end to end on a real Redis, a real Redis Cluster and real edges. Nothing
here depends on how fast the machine is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# The repository's `bench` package: `tests/` is on the path too, and its `bench` folder
# would otherwise shadow it as a namespace package.
sys.path.insert(0, str(REPO))

from bench.capacity import (Assumptions, Demand, Market, UnitCosts, edge_cpu_cores,  # noqa: E402
                            inclusion, size)
from bench.workload import Workload, zipf_weights  # noqa: E402
from tests.bench.test_bench_smoke import run_module  # noqa: E402

COSTS = UnitCosts(edge_us_per_update=30.0, edge_system_us_per_update=20.0, edge_us_per_tick=16.0,
                  edge_us_per_socket_fanout=29.0, edge_kib_per_socket=16.0,
                  redis_us_per_publish=14.0, redis_us_per_delivery=2.8,
                  cluster_us_per_publish=20.0, cluster_us_per_delivery=2.0,
                  registry_us_per_heartbeat_symbol=6.5, registry_us_per_event=150.0,
                  registry_ms_per_heartbeat=800.0, registry_heartbeat_symbols=10_000,
                  sources=("bench.json", "redis.json"))


def test_inclusion_matches_the_workload_draw():
    """The model's watchers per symbol agree with what bench/workload.py draws."""
    clients, symbols, per_client = 4000, 500, 20
    drawn = Workload.build(clients=clients, symbols=symbols, per_client=per_client,
                           popularity=1.0, tick_skew=0.0, seed=3).watchers()
    model = clients * inclusion(zipf_weights(symbols, 1.0), per_client)
    assert model.sum() == pytest.approx(clients * per_client)
    assert model[0] == pytest.approx(drawn[0], rel=0.02)  # the top symbol: 3,909 drawn
    # By popularity band, where sampling noise averages out (each band within 1 % here).
    for band in ((1, 5), (5, 20), (20, 50), (50, 100), (100, 200), (200, 350), (350, 500)):
        part = slice(*band)
        assert model[part].mean() == pytest.approx(drawn[part].mean(), rel=0.03), band


def test_edges_are_the_fewest_that_fit_and_deliveries_grow_with_edges():
    market = Market(sockets=200_000, per_socket=20, symbols=2_000, tick_rate=500.0)
    a = Assumptions()
    r = size(market, COSTS, a)
    demand = Demand(market)
    budget = a.edge_cores * a.edge_utilisation
    assert edge_cpu_cores(demand, r["edges_for_cpu"], COSTS) <= budget
    assert edge_cpu_cores(demand, r["edges_for_cpu"] - 1, COSTS) > budget
    assert r["edges"] == max(r["edges_for_cpu"], r["edges_for_latency"])
    assert r["hot_fanout_ms"] <= a.hot_fanout_ms
    assert r["updates_per_s"] == pytest.approx(500.0 * 200_000 * 20 / 2_000)  # even ticks
    held = [float((demand.ticks * demand.held(e)).sum()) * e for e in (10, 20, 40)]
    assert held[0] < held[1] < held[2] <= 3 * market.tick_rate * 40
    assert r["redis_shard_cores"] <= a.redis_utilisation
    assert r["redis_shards"] == 1 or r["redis_shards"] >= 3  # a Redis Cluster has 3 primaries
    assert 0 < r["kafka_event_per_change"] < 1  # popular symbols never transition


def test_capacity_cli_prints_the_table_from_the_committed_reports(tmp_path: Path):
    out = tmp_path / "model.json"
    result = run_module("bench.capacity", "--sockets", "100000", "--json", str(out), timeout=120)
    assert "| edges" in result.stdout and "| Redis shards" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["market"]["sockets"] == 100000
    assert figures["edges"] >= 1 and figures["redis_shards"] >= 1


@pytest.mark.timeout(300)
def test_redis_cost_reports_fitted_unit_costs(tmp_path: Path):
    out = tmp_path / "redis-cost.json"
    run_module("bench.redis_cost", "--rate", "300", "--channels", "20", "--subscribers", "0,3",
               "--seconds", "1", "--repeats", "1", "--heartbeat-symbols", "300",
               "--heartbeats", "3", "--out", str(out), timeout=240)
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"standalone", "cluster"}
    assert report["modes"]["cluster"]["shards"] == 3
    for mode in report["modes"].values():
        trials = {t["subscribers"]: t for t in mode["trials"]}
        assert trials[0]["deliveries_per_s"] == 0
        # Every subscriber connection got every tick of the window (bytes counted), give
        # or take the frames in flight at its two edges.
        assert trials[3]["received_ratio"] == pytest.approx(1.0, abs=0.1)
        assert {"publish_us", "delivery_us"} <= set(mode["fit"])
    registry = report["modes"]["standalone"]["registry"]
    assert registry["redis_cpu_us_per_symbol"] > 0
    assert registry["redis_cpu_us_per_subscription_event"] > 0


@pytest.mark.timeout(600)
def test_scaling_trial_subscribes_each_edge_to_what_its_clients_watch(tmp_path: Path):
    out = tmp_path / "scaling.json"
    run_module("bench.scaling", "--clients", "30", "--symbols", "25", "--per-client", "4",
               "--rate", "40", "--edges", "1,2", "--shards", "1,3", "--warmup", "1",
               "--duration", "2", "--drain", "1", "--out", str(out), timeout=540)
    trials = json.loads(out.read_text())["trials"]
    assert [(t["shards"], t["edges"]) for t in trials] == [(1, 1), (1, 2), (3, 1), (3, 2)]
    for t in trials:
        assert t["connected"] == 30
        assert t["unmatched_updates"] == 0
        assert t["injector_redis_errors"] == 0  # on the cluster: no -MOVED, each SPUBLISH routed
        assert t["ticks_per_s"] > 0 and t["updates_per_s"] > 0
        # Redis holds one subscriber per edge with a client of the symbol, no more, no less.
        assert t["edges_holding_mean"] == pytest.approx(t["edges_holding_assigned"])
        assert len(t["redis_primary_cpu_cores"]) == t["shards"]
    for shards in (1, 3):
        one, two = (t for t in trials if t["shards"] == shards)
        assert two["edges_holding_assigned"] > one["edges_holding_assigned"]
        assert np.isclose(one["edges_holding_assigned"], one["edges_holding_mean"])


def test_the_committed_model_inputs_exist():
    """docs/capacity.md's figures come from these reports."""
    for name in ("latest.json", "redis-cost-latest.json", "scaling-latest.json"):
        assert (REPO / "bench" / "results" / name).exists(), name
