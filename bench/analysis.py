"""From raw logs to figures: join what clients received with what was published.

Inputs are flat numpy arrays. Published ticks: `key = symbol << 32 | seq` and
`publishedAt` (Unix ns). Received updates: client id, key, receive time (Unix ns).

Delivery accounting for a window of publish time W = [w0, w1) and a horizon H ≥ w1:
for each (client, symbol) it subscribed, the ticks of that symbol published in W are
  expected   = all of them;
  delivered  = received by H;
  lost       = never followed by anything newer by H (the client's newest seq for the
               symbol at H is older): a gap nobody can explain away;
  superseded = the rest: skipped, but a newer value of the symbol did arrive.
Superseded updates are conflation only as far as the server says it conflated (the edge's
`tickwire_edge_conflated_updates_total` over the same span); any excess is a gap too. So
  gaps = lost + max(0, superseded - server_conflated),  conflated = superseded - excess.
"""

from __future__ import annotations

import numpy as np

SEQ_MASK = 0xFFFFFFFF


class Joined:
    """Received updates with the `publishedAt` of the tick each one carries."""

    def __init__(self, pub_key: np.ndarray, pub_t: np.ndarray, rec_client: np.ndarray,
                 rec_key: np.ndarray, rec_t: np.ndarray, nsym: int, nclients: int):
        order = np.argsort(pub_key, kind="stable")
        self.pub_key = pub_key[order]
        self.pub_t = pub_t[order]
        self.nsym = nsym
        self.nclients = nclients
        self.rec_client = rec_client
        self.rec_key = rec_key
        self.rec_t = rec_t
        at = np.searchsorted(self.pub_key, rec_key)
        at = np.minimum(at, max(0, len(self.pub_key) - 1))
        matched = (self.pub_key[at] == rec_key) if len(self.pub_key) else np.zeros(len(rec_key), bool)
        self.unmatched = int((~matched).sum())
        self.rec_pub_t = np.where(matched, self.pub_t[at] if len(self.pub_t) else 0, -1)
        self.rec_cs = rec_client.astype(np.int64) * nsym + (rec_key >> 32)

    def latencies_ms(self, w0: int, w1: int) -> np.ndarray:
        """End-to-end latency of every received update whose tick was published in W."""
        mask = (self.rec_pub_t >= w0) & (self.rec_pub_t < w1)
        return (self.rec_t[mask] - self.rec_pub_t[mask]) / 1e6

    def received_between(self, t0: int, t1: int) -> int:
        return int(((self.rec_t >= t0) & (self.rec_t < t1)).sum())

    def published_between(self, w0: int, w1: int) -> int:
        return int(((self.pub_t >= w0) & (self.pub_t < w1)).sum())

    def accounting(self, w0: int, w1: int, horizon: int, sub_client: np.ndarray,
                   sub_sym: np.ndarray, server_conflated: float | None) -> dict:
        nsym = self.nsym
        in_w = (self.pub_t >= w0) & (self.pub_t < w1)
        wsym = self.pub_key[in_w] >> 32
        wseq = self.pub_key[in_w] & SEQ_MASK
        published = np.bincount(wsym, minlength=nsym)
        first = np.full(nsym, np.iinfo(np.int64).max, dtype=np.int64)
        last = np.zeros(nsym, dtype=np.int64)
        np.minimum.at(first, wsym, wseq)
        np.maximum.at(last, wsym, wseq)
        seq = self.rec_key & SEQ_MASK
        by_horizon = self.rec_t <= horizon
        in_window = (self.rec_pub_t >= w0) & (self.rec_pub_t < w1)
        delivered_cs = np.bincount(self.rec_cs[in_window & by_horizon],
                                   minlength=self.nclients * nsym)
        newest_cs = np.zeros(self.nclients * nsym, dtype=np.int64)
        np.maximum.at(newest_cs, self.rec_cs[by_horizon], seq[by_horizon])
        sub = sub_client.astype(np.int64) * nsym + sub_sym
        expected = published[sub_sym]
        delivered = delivered_cs[sub]
        lost = np.where(expected > 0,
                        np.clip(last[sub_sym] - np.maximum(newest_cs[sub], first[sub_sym] - 1),
                                0, None), 0)
        superseded = expected - delivered - lost
        expected_n, delivered_n = int(expected.sum()), int(delivered.sum())
        lost_n, superseded_n = int(lost.sum()), int(superseded.sum())
        # Unknown (the server did not say): every skip counts as a gap.
        conflated = min(superseded_n, int(server_conflated or 0))
        gaps = lost_n + superseded_n - conflated
        late = int((in_window & ~by_horizon).sum())
        return {
            "published_ticks": int(published.sum()),
            "expected": expected_n,
            "delivered": delivered_n,
            "superseded": superseded_n,
            "lost": lost_n,
            "server_conflated": None if server_conflated is None else int(server_conflated),
            "conflated": conflated,
            "gaps": gaps,
            "late_after_horizon": late,
            "delivery_ratio": delivered_n / expected_n if expected_n else None,
            "clients_skipping": int(np.unique(sub_client[(lost > 0) | (superseded > 0)]).size),
        }

    def fanout_cost(self, w0: int, w1: int, top_watchers: int) -> dict:
        """What one tick costs to fan out: for every tick published in W, the latency of its
        last delivery against how many sockets it went to. A single-threaded server writes
        to a tick's watchers one after another, so the slope is the time per socket and
        `top_symbol_ms` (the fit at the most-watched symbol's audience) bounds the tail."""
        mask = (self.rec_pub_t >= w0) & (self.rec_pub_t < w1)
        keys, t, pub = self.rec_key[mask], self.rec_t[mask], self.rec_pub_t[mask]
        if keys.size < 2:
            return {"ticks": 0, "us_per_socket": None, "intercept_ms": None,
                    "top_symbol_watchers": top_watchers, "top_symbol_ms": None}
        order = np.argsort(keys, kind="stable")
        keys, t, pub = keys[order], t[order], pub[order]
        starts = np.r_[0, np.flatnonzero(np.diff(keys)) + 1]
        sockets = np.diff(np.r_[starts, keys.size])
        last_ms = (np.maximum.reduceat(t, starts) - pub[starts]) / 1e6
        if np.unique(sockets).size < 2:
            slope, intercept = 0.0, float(np.median(last_ms))
        else:
            slope, intercept = np.polyfit(sockets, last_ms, 1)
        return {"ticks": int(starts.size), "us_per_socket": round(float(slope) * 1000, 2),
                "intercept_ms": round(float(intercept), 2),
                "top_symbol_watchers": top_watchers,
                "top_symbol_ms": round(float(intercept + slope * top_watchers), 1),
                "largest_fanout": int(sockets.max()),
                "largest_fanout_last_ms": round(float(last_ms[np.argmax(sockets)]), 1)}

    def timeline(self, start: int, end: int, bin_s: float = 0.1) -> tuple[list[float], list[float]]:
        """Delivered updates per second in bins of receive time, from `start`."""
        width = int(bin_s * 1e9)
        bins = max(1, int((end - start) // width))
        mask = (self.rec_t >= start) & (self.rec_t < start + bins * width)
        counts = np.bincount((self.rec_t[mask] - start) // width, minlength=bins)
        return [round(i * bin_s, 3) for i in range(bins)], (counts / bin_s).tolist()


def latency_timeline(joined: Joined, start: int, end: int, bin_s: float = 0.25) -> dict:
    """p50 / p99 / max latency per bin of publish time: stalls show up as spikes."""
    width = int(bin_s * 1e9)
    mask = (joined.rec_pub_t >= start) & (joined.rec_pub_t < end)
    bins = (joined.rec_pub_t[mask] - start) // width
    latency = (joined.rec_t[mask] - joined.rec_pub_t[mask]) / 1e6
    out: dict = {"bin_s": bin_s, "t": [], "p50": [], "p99": [], "max": []}
    order = np.argsort(bins, kind="stable")
    bins, latency = bins[order], latency[order]
    edges = np.flatnonzero(np.diff(bins)) + 1
    for b, chunk in zip(bins[np.r_[0, edges]] if bins.size else [], np.split(latency, edges)):
        out["t"].append(round(float(b) * bin_s, 3))
        p50, p99 = np.percentile(chunk, [50, 99])
        out["p50"].append(round(float(p50), 2))
        out["p99"].append(round(float(p99), 2))
        out["max"].append(round(float(chunk.max()), 2))
    return out


def percentiles(latencies_ms: np.ndarray) -> dict:
    if latencies_ms.size == 0:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None,
                "mean": None}
    p50, p90, p99, p999 = np.percentile(latencies_ms, [50, 90, 99, 99.9])
    return {"count": int(latencies_ms.size), "p50": round(float(p50), 3),
            "p90": round(float(p90), 3), "p99": round(float(p99), 3),
            "p999": round(float(p999), 3), "max": round(float(latencies_ms.max()), 3),
            "mean": round(float(latencies_ms.mean()), 3)}


def machine_shares(cpu: dict[str, float], seconds: float) -> dict[str, float | None]:
    """From a window's CPU seconds (`Trial._cpu` differences): cores that other processes
    used (`foreign`: the machine's busy time less every process the trial knows) and cores
    the hypervisor gave other guests (`steal`)."""
    if not seconds:
        return {"foreign_cpu_cores": None, "steal_cpu_cores": None}
    known = sum(v for k, v in cpu.items()
                if k not in ("machine_busy", "machine_steal", "server_system",
                             "server_runqueue"))
    return {"foreign_cpu_cores": round((cpu["machine_busy"] - known) / seconds, 3),
            "steal_cpu_cores": round(cpu["machine_steal"] / seconds, 3)}
