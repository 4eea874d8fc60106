"""The report's chart: end-to-end latency CDF and delivered messages/s over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import numpy as np  # noqa: E402

COLOURS = {"tickwire": "tab:blue", "baseline": "tab:orange"}


def draw(results: list[dict], systems: list[str], path: Path) -> None:
    fig, (cdf, rate) = plt.subplots(1, 2, figsize=(13, 4.8))
    for system in systems:
        runs = [r for r in results if r["system"] == system]
        latencies = np.concatenate([r["latencies_ms"] for r in runs]) if runs else np.zeros(0)
        if latencies.size:
            xs = np.sort(latencies)
            ys = np.arange(1, xs.size + 1) / xs.size
            step = max(1, xs.size // 20000)
            cdf.plot(np.maximum(xs[::step], 1e-3), ys[::step], label=f"{system} ({len(runs)} runs)",
                     color=COLOURS.get(system))
        if runs:
            seconds, per_second = runs[0]["timeline"]
            rate.plot(seconds, per_second, label=f"{system} #1", color=COLOURS.get(system),
                      linewidth=0.8)
    cdf.set_xscale("log")
    cdf.set_xlabel("publishedAt → client receive (ms, log)")
    cdf.set_ylabel("fraction of updates")
    cdf.set_title("End-to-end latency, measured window")
    for q in (0.5, 0.99, 0.999):
        cdf.axhline(q, color="grey", linewidth=0.5, linestyle=":")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend()
    rate.set_xlabel("seconds since ticks started (warm-up, window, saturation steps)")
    rate.set_ylabel("updates delivered / s (250 ms bins)")
    rate.set_title("Throughput over time")
    rate.grid(True, alpha=0.3)
    rate.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
