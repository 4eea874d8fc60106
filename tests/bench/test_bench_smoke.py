"""The benchmark end to end with small numbers: it runs, stops everything it started, and
writes a complete, self-consistent report. Nothing here depends on how fast the machine is.
The reconnect storm runs against Centrifugo too when a Centrifugo binary is found (an
optional comparator: without one, the report and output must say it was skipped)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The repository's `bench` package, not the `tests/bench` folder (see test_capacity.py).
sys.path.insert(0, str(REPO))

from bench.centrifugo import find_binary  # noqa: E402

CLIENTS = 30
SMOKE = ["--clients", str(CLIENTS), "--symbols", "25", "--per-client", "4", "--rate", "40",
         "--idle-seconds", "1", "--warmup", "1", "--duration", "2", "--drain", "1",
         "--repeats", "1",
         "--sat-steps", "2", "--sat-step-seconds", "1", "--loaders", "2",
         "--ingest-rate", "2000", "--ingest-clients", "5", "--ingest-seconds", "2",
         "--upstream-rate", "200", "--upstream-symbols", "20", "--upstream-seconds", "2",
         "--coldstart-active", "10", "--coldstart-samples", "1",
         "--storm-clients", "60", "--storm-concurrency", "20", "--workers", "2"]


def run_module(module: str, *argv: str, timeout: float = 540) -> subprocess.CompletedProcess:
    process = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM by PID: the runner unwinds and stops its own children the same way.
        os.kill(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"{module} did not finish:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def run_bench(out: Path) -> subprocess.CompletedProcess:
    return run_module("bench.run", *SMOKE, "--out", str(out))


def consistent_window(figures: dict, cpu_measured: bool = True) -> None:
    """`cpu_measured`: False for the short saturation steps, where a lightly loaded server
    can use less CPU than the kernel's 10 ms accounting tick, so it reads 0."""
    acc = figures["accounting"]
    assert acc["expected"] > 0
    assert 0 <= acc["delivered"] <= acc["expected"]
    assert acc["delivered"] + acc["superseded"] + acc["lost"] == acc["expected"]
    assert acc["superseded"] >= 0 and acc["lost"] >= 0
    assert acc["conflated"] + acc["gaps"] == acc["superseded"] + acc["lost"]
    assert acc["delivery_ratio"] == pytest.approx(acc["delivered"] / acc["expected"])
    lat = figures["latency_ms"]
    assert lat["count"] > 0
    assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert figures["tick_rate"] > 0 and figures["delivered_msgs_per_s"] > 0
    assert figures["server_cpu_us_per_msg"] > 0 if cpu_measured else \
        figures["server_cpu_us_per_msg"] >= 0


@pytest.mark.timeout(660)
def test_bench_smoke_report_is_complete_and_consistent(tmp_path: Path):
    result = run_bench(tmp_path)
    report = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / f"{report['started_utc']}.json").exists()
    assert (tmp_path / report["chart"]).stat().st_size > 0
    assert (tmp_path / "latest.png").stat().st_size > 0
    assert "tickwire/baseline" in result.stdout

    runs = [r for r in report["runs"] if r["kind"] == "fanout"]
    assert sorted(r["system"] for r in runs) == ["baseline", "tickwire", "tickwire-2w"]
    for run in runs:
        assert run["connect"]["connected"] == CLIENTS, run["connect"]
        assert run["connect"]["rate_per_s"] > 0
        assert run["unmatched_updates"] == 0  # every update received was a published tick
        assert run["loaders"]["regressions"] == 0  # per symbol, seq order (DESIGN.md §3)
        assert run["injector"]["redis_errors"] == 0
        main = run["main"]
        consistent_window(main)
        assert main["rss_per_conn_idle_kib"] is not None
        assert main["server_idle_cpu_cores"] >= 0
        assert main["server_runqueue_wait_cores"] >= 0
        assert main["rss_per_conn_load_kib"] is not None
        fanout = main["fanout"]
        assert fanout["ticks"] > 0 and fanout["top_symbol_watchers"] > 0
        assert fanout["largest_fanout"] <= fanout["top_symbol_watchers"]
        saturation = run["saturation"]
        for step in saturation["steps"]:
            consistent_window(step, cpu_measured=False)
        if "at_half" in saturation:
            consistent_window(saturation["at_half"], cpu_measured=False)
        if run["system"].startswith("tickwire"):
            assert run["loaders"]["snapshots"] == CLIENTS * 4  # one per subscribed symbol
            assert main["accounting"]["server_conflated"] is not None
            # The edge's stall probes (issue #20): a 50 ms timer, so some observations.
            assert main["loop_lag"]["count"] > 0 and main["loop_lag"]["p99_ms"] is not None
            assert main["full_gc"] is not None
        else:
            assert main["loop_lag"] is None

    # The client variants (issue #20): tickwire with deflate and with msgpack clients,
    # beside the plain trial, each with its bytes on the wire per update.
    variants = {r["system"]: r for r in report["runs"] if r["kind"] == "variant"}
    assert set(variants) == {"tickwire+deflate", "tickwire+msgpack"}
    plain = next(r for r in runs if r["system"] == "tickwire")
    for run in variants.values():
        assert run["connect"]["connected"] == CLIENTS, run["connect"]
        assert run["unmatched_updates"] == 0 and run["loaders"]["regressions"] == 0
        consistent_window(run["main"])
        assert run["loaders"]["snapshots"] == CLIENTS * 4
    # Compressed JSON and msgpack are both smaller on the wire than plain JSON.
    for label in variants:
        assert 0 < variants[label]["main"]["wire_bytes_per_update"] < \
            plain["main"]["wire_bytes_per_update"], label
        assert report["median"][label]["cpu_us_per_msg"] > 0
    assert report["variant_ratio"]["tickwire+deflate/tickwire cpu_us_per_msg"] > 0
    assert "deflate_cpu_per_msg_vs_plain_max" in report["targets"]

    # The reconnect storm (issue #20): everyone subscribed, nobody refused or timed out,
    # and every client saw its first update (each symbol's latest tick: tickwire's
    # snapshot, or the publication Centrifugo's cache recovery mode answers with).
    centrifugo, why_not = find_binary()
    storms = {r["system"]: r for r in report["runs"] if r["kind"] == "storm"}
    assert set(storms) == ({"tickwire", "centrifugo", "centrifugo-plain"} if centrifugo
                           else {"tickwire"})
    for system, storm_run in storms.items():
        storm = storm_run["storm"]
        assert storm["clients"] == storm["connected"] == 60, system
        assert storm["refused"] == storm["timed_out"] == storm["other_failures"] == 0, system
        assert storm["first_update_ms"]["count"] == 60 == storm["clients_with_an_update"]
        assert storm["handshake_subscribe_ms"]["count"] == 60
        assert storm["server_cpu_ms_per_conn"] > 0 and storm["connections_per_s"] > 0
        assert storm_run["loaders"]["regressions"] == 0 and not storm_run["loaders"]["errors"]
        assert storm_run["injector"]["redis_errors"] == 0  # Centrifugo's: API errors
        assert report["median"][system]["storm_all_subscribed_s"] > 0
    # Every subscribed symbol reached its client: mostly as the snapshot, unless a live
    # tick of the feed got there first (the older snapshot is then not sent).
    assert storms["tickwire"]["loaders"]["symbols_seen"] == 60 * 4
    assert 0 < storms["tickwire"]["loaders"]["snapshots"] <= 60 * 4
    assert "storm_cpu_per_conn_vs_centrifugo_max" in report["targets"]
    if centrifugo:
        # Cache recovery mode: each subscription's reply carries its latest publication.
        assert storms["centrifugo"]["loaders"]["symbols_seen"] == 60 * 4
        assert 0 < storms["centrifugo"]["loaders"]["snapshots"] <= 60 * 4
        assert report["storm_comparator"]["snapshots"] == {"centrifugo": True,
                                                           "centrifugo-plain": False}
        assert storms["centrifugo-plain"]["loaders"]["snapshots"] == 0
        assert storms["centrifugo-plain"]["loaders"]["updates"] > 0
        assert report["variant_ratio"][
            "tickwire/centrifugo-plain storm_server_cpu_ms_per_conn"] > 0
        assert report["ratio"]["storm_server_cpu_ms_per_conn"] is not None
        assert report["storm_comparator"]["engine"] == "redis"
        assert "tickwire/centrifugo" in result.stdout
    else:
        assert result.stdout.count(f"storm: centrifugo skipped: {why_not}") == 1
        assert report["storm_comparator"] == {"skipped": why_not}
    # Two workers against one, in the same run.
    assert report["variant_ratio"]["tickwire-2w/tickwire saturation_tick_rate"] > 0
    assert {"storm_all_subscribed_s_max", "workers_saturation_ratio_min",
            "half_saturation_loop_lag_p99_ms_max"} <= set(report["targets"])

    # The ingest trial: tickwire only (its clients use maxHz, which the baseline lacks).
    ingest = [r for r in report["runs"] if r["kind"] == "ingest"]
    assert [r["system"] for r in ingest] == ["tickwire"]
    main = ingest[0]["main"]
    consistent_window(main)
    assert main["server_ticks_per_s"] > 0 and main["server_cpu_us_per_tick"] > 0
    assert main["accounting"]["conflated"] > 0  # maxHz 1 at 80 ticks/s per symbol

    medians, ratio = report["median"], report["ratio"]
    for name, value in ratio.items():  # tickwire ÷ the other system each figure names
        other = report["figures"][name]["ratio"].removeprefix("tickwire/")
        a, b = medians["tickwire"][name], medians[other][name]
        if value is None:
            assert a is None or not b
        else:
            assert math.isclose(value, round(a / b, 3), abs_tol=1e-3), name
    for name in ("delivered_msgs_per_s", "delivery_ratio", "latency_p50_ms", "latency_p99_ms",
                 "latency_p999_ms", "cpu_us_per_msg", "rss_per_conn_idle_kib",
                 "rss_per_conn_load_kib", "connect_rate_per_s"):
        assert ratio[name] is not None, name
    assert set(report["targets"]) >= {"cpu_per_msg_ratio_max", "saturation_throughput_ratio_min",
                                      "delivery_ratio_min", "rss_per_idle_conn_kib_max",
                                      "ingest_ticks_per_s_min", "ingest_p99_ms_max"}
    assert medians["tickwire"]["ingest_taken_in_ticks_per_s"] > 0
    assert "ingest_taken_in_ticks_per_s" not in medians["baseline"]

    # The upstream-stream trial (issue #15): every trade taken in, ticks out, latency joined.
    (up,) = report["upstream_runs"]
    consistent_upstream(up)
    assert medians["tickwire"]["upstream_latency_p99_ms"] is not None
    assert "upstream_p99_ms_max" in report["targets"]
    # The cold-symbol trial (issue #19): a first quote, quiet and under churn.
    (cold,) = report["coldstart_runs"]
    consistent_coldstart(cold)
    assert medians["tickwire"]["coldstart_first_quote_churn_ms"] > 0


def consistent_upstream(result: dict) -> None:
    assert result["trades_sent"] > 0 and result["trades_in"] == result["trades_sent"]
    assert 0 < result["ticks_out"] <= result["trades_in"]
    assert 0 < result["updates_received"] <= result["ticks_out"]
    lat = result["latency_ms"]
    assert lat["count"] == result["updates_received"]  # every update joined with its trade
    assert 0 <= lat["p50"] <= lat["p99"] <= lat["max"]
    assert result["ingestor_cpu_us_per_trade"] > 0


def consistent_coldstart(result: dict) -> None:
    assert len(result["quiet_s"]) == len(result["churn_s"]) == result["samples"]
    assert all(0 < t < 60 for t in result["quiet_s"] + result["churn_s"])
    assert result["churn_messages"] > 0
