"""The reconnect-storm trial (issue #20): when an edge dies, its sockets reconnect to
the others at once.

One server with a live feed (`--storm-rate` ticks/s): a tickwire edge, or Centrifugo
(`COMPARATORS`, bench/centrifugo.py) with the same workload, interleaved with it in the
same run. `--storm-clients` sockets, split over the load generators, connect and
subscribe `--per-client` symbols each, at most `--storm-concurrency` attempts in flight
in all, each attempt bounded by 30 s. Figures: time from the first attempt to the last
`subscribed` ack (**all subscribed**), connections per second, handshake-to-ack and
attempt-to-first-update percentiles (the first update is the symbol's latest tick, what a
user waits to see prices again: tickwire's snapshot, or the publication in the reply of
Centrifugo's cache recovery mode; `centrifugo-plain` sends none, and its first update
is the first live publication), refused (an HTTP answer
other than 101) and timed-out attempts, and the server's CPU per connection from the
first attempt to the last ack (workers, threads included). The first updates are gathered once every
subscribed client has one, or after `FIRST_UPDATE_BOUND_S`.
"""

from __future__ import annotations

import time

import numpy as np

from bench.analysis import machine_shares, percentiles

COMPARATOR = "centrifugo"  # the storm's ratios are tickwire ÷ this system
PLAIN_COMPARATOR = "centrifugo-plain"  # and, in `variant_ratio`, ÷ this one
# Each comparator, and whether its subscriptions get a snapshot (cache recovery mode):
# "centrifugo" does the work tickwire does; "centrifugo-plain" only subscribes.
COMPARATORS = {COMPARATOR: True, PLAIN_COMPARATOR: False}
FIRST_UPDATE_BOUND_S = 30.0

FIGURES = {  # name: (path in a storm result, better when)
    "storm_all_subscribed_s": (("storm", "all_subscribed_s"), "lower"),
    "storm_connections_per_s": (("storm", "connections_per_s"), "higher"),
    "storm_handshake_subscribe_p99_ms": (("storm", "handshake_subscribe_ms", "p99"), "lower"),
    "storm_first_update_p99_ms": (("storm", "first_update_ms", "p99"), "lower"),
    "storm_refused": (("storm", "refused"), "lower"),
    "storm_timed_out": (("storm", "timed_out"), "lower"),
    "storm_server_cpu_ms_per_conn": (("storm", "server_cpu_ms_per_conn"), "lower"),
    "storm_foreign_cpu_cores": (("storm", "foreign_cpu_cores"), "lower"),
    "storm_steal_cpu_cores": (("storm", "steal_cpu_cores"), "lower"),
}


def classify(failures: dict[str, int]) -> tuple[int, int, int]:
    """(refused, timed out, other) attempts from the load generators' failure reasons."""
    refused = sum(n for reason, n in failures.items() if "handshake refused" in reason)
    timed_out = sum(n for reason, n in failures.items() if reason.startswith("TimeoutError"))
    return refused, timed_out, sum(failures.values()) - refused - timed_out


def first_updates(loaders, connected: int) -> list[float]:
    """Every subscribed client's attempt-to-first-update (ms), asked for until `connected`
    clients have one or FIRST_UPDATE_BOUND_S has passed."""
    deadline = time.monotonic() + FIRST_UPDATE_BOUND_S
    while True:
        firsts: list[float] = []
        for loader in loaders:
            loader.conn.send(("first_updates",))
            firsts.extend(loader.expect("first_updates")[1])
        if len(firsts) >= connected or time.monotonic() >= deadline:
            return firsts
        time.sleep(0.2)


def measure(trial, rate: float, profile: bool = False) -> dict:
    """Run the storm on a started `trial` (server, injector primed, loaders ready):
    feed at `rate`, connect everyone at once, gather the figures. With `profile`, py-spy
    samples the edge from the first attempt to the last ack."""
    trial.injector.conn.send(("rate", rate))
    time.sleep(1.0)  # the feed is live before the first reconnect
    spy = trial._spy("storm") if profile else None
    before = trial._cpu()
    for loader in trial.loaders:
        loader.conn.send(("connect",))
    connects = [loader.expect("connected", 300)[1] for loader in trial.loaders]
    after = trial._cpu()
    if spy is not None:
        trial._unspy(spy)
    connected = sum(len(info["connected"]) for info in connects)
    firsts = first_updates(trial.loaders, connected)
    failures: dict[str, int] = {}
    for info in connects:
        for reason, n in info["failures"].items():
            failures[reason] = failures.get(reason, 0) + n
    refused, timed_out, other = classify(failures)
    span = (max(i["finished_ns"] for i in connects) - min(i["started_ns"] for i in connects)) / 1e9
    seconds = (after["t"] - before["t"]) / 1e9
    cpu = {k: after[k] - before[k] for k in before if k != "t"}
    return {
        "clients": sum(len(info["connected"]) for info in connects) + sum(failures.values()),
        "connected": connected, "refused": refused, "timed_out": timed_out,
        "other_failures": other, "failures": failures,
        "all_subscribed_s": round(span, 3),
        "connections_per_s": round(connected / span, 1) if span else None,
        "handshake_subscribe_ms": percentiles(
            np.array([d for info in connects for d in info["handshake_ms"]])),
        "first_update_ms": percentiles(np.array(firsts)),
        "clients_with_an_update": len(firsts),
        "server_cpu_ms_per_conn": round(cpu["server"] * 1e3 / connected, 3) if connected else None,
        "cpu_cores": {k: round(v / seconds, 3) for k, v in cpu.items()
                      if k != "server_runqueue"} if seconds else {},
        **machine_shares(cpu, seconds),
    }
