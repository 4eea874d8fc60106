"""Every core of a pod: several edge processes on one port, under one supervising parent.

With TICKWIRE_EDGE_WORKERS=N (or `auto`: one per core this process may use, cgroup-aware)
`tickwire-edge` becomes a parent that runs N worker processes. Each worker is a complete
edge (its own Redis and Kafka clients, sessions and registry lease) with the id
`<edge id>.w<i>`, and all of them listen on the edge port with SO_REUSEPORT, so the
kernel spreads new connections across them.

Guarantees:
- SIGTERM or SIGINT to the parent reaches every worker, each drains as a lone edge does,
  and the parent exits once all have (status 0 when every worker exited 0).
- A worker that exits unasked is restarted under the same id after a backoff that grows
  from 1 s to 30 s while it keeps dying young (up for less than a minute).
- `/metrics` on any worker answers for all of them: every series gains a `worker` label,
  gathered from each worker's private metrics listener, a Unix socket in a directory only
  this pod's user can open (no port to pick, so none that another connection can take
  before a restarted worker binds it); the parent removes the directory when it exits.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import prometheus_client
from aiohttp import ClientError, ClientSession, ClientTimeout, UnixConnector, web
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tickwire.core.backoff import backoff_delay

log = logging.getLogger(__name__)

WORKER_ENV = "TICKWIRE_EDGE_WORKER_INDEX"          # set by the parent, for its children only
WORKER_COUNT_ENV = "TICKWIRE_EDGE_WORKER_COUNT"     # likewise
METRICS_DIR_ENV = "TICKWIRE_EDGE_WORKER_METRICS_DIR"
RESTART_BACKOFF = (1.0, 30.0)
HEALTHY_UPTIME = 60.0


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2/v1 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def _cgroup_quota() -> float | None:
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            limit, period = f.read().split()
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            limit = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        return None if limit <= 0 else limit / period
    except (OSError, ValueError):
        return None


def worker_count(setting: str) -> int:
    return available_cores() if setting == "auto" else int(setting)


def worker_index() -> int | None:
    """This process's index when it is a worker started by the parent, else None."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value is not None and value.isdigit() else None


def worker_id(edge_id: str, index: int) -> str:
    return f"{edge_id}.w{index}"


def pod_id(edge_id: str) -> str:
    """The id a worker's parent answers to (control messages may name the pod)."""
    base, sep, index = edge_id.rpartition(".w")
    return base if sep and index.isdigit() and worker_index() is not None else edge_id


# -- the parent ---------------------------------------------------------------------------


def metrics_socket(directory: str, index: int) -> str:
    """Where worker `index` serves its own metrics."""
    return os.path.join(directory, f"w{index}.sock")


@dataclass
class _Worker:
    index: int
    env: dict[str, str]
    command: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env)
        self.started = time.monotonic()
        self.restart_at = None
        log.info("edge worker started", extra={"worker": self.index, "pid": self.process.pid})


@dataclass
class Supervisor:
    """Starts the workers, restarts the ones that die, and stops them all on a signal."""

    edge_id: str
    count: int
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "tickwire.edge"])
    workers: list[_Worker] = field(default_factory=list)
    stopping: bool = False
    metrics_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="tickwire-edge-"))

    def __post_init__(self) -> None:
        for index in range(self.count):
            env = dict(os.environ, **{WORKER_ENV: str(index), WORKER_COUNT_ENV: str(self.count),
                                      METRICS_DIR_ENV: self.metrics_dir,
                                      "TICKWIRE_EDGE_ID": worker_id(self.edge_id, index),
                                      "TICKWIRE_EDGE_WORKERS": "1"})
            self.workers.append(_Worker(index, env, self.command))

    def run(self) -> int:
        try:
            return self._supervise()
        finally:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _supervise(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for worker in self.workers:
            worker.start()
        while True:
            now = time.monotonic()
            alive = 0
            for worker in self.workers:
                alive += self._tend(worker, now)
            if self.stopping and alive == 0:
                codes = [w.process.returncode for w in self.workers if w.process is not None]
                return 0 if all(code == 0 for code in codes) else 1
            time.sleep(0.2)

    def _tend(self, worker: _Worker, now: float) -> int:
        """1 while the worker runs; restarts a dead one when its backoff has passed."""
        process = worker.process
        if process is not None and process.poll() is None:
            return 1
        if self.stopping:
            return 0
        if worker.restart_at is None:
            uptime = now - worker.started
            worker.failures = 0 if uptime >= HEALTHY_UPTIME else worker.failures + 1
            delay = backoff_delay(max(0, worker.failures - 1), *RESTART_BACKOFF, jitter="none")
            worker.restart_at = now + delay
            log.warning("edge worker exited; restarting", extra={
                "worker": worker.index, "code": process.returncode if process else None,
                "uptime_s": round(uptime, 1), "restart_in_s": delay})
        if now >= worker.restart_at:
            worker.start()
            return 1
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("stopping edge workers", extra={"signal": signal.Signals(signum).name})
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)


# -- metrics of every worker ----------------------------------------------------------------


def _labelled(families: Iterable[Metric], worker: str) -> Iterable[Metric]:
    for family in families:
        for sample in family.samples:
            yield family, sample._replace(labels={**sample.labels, "worker": worker})


class WorkerMetrics:
    """Serves this worker's own registry privately and the merge of all workers publicly."""

    def __init__(self, index: int, count: int, directory: str,
                 before_scrape: Callable[[], None] | None = None):
        self.index = index
        self.sockets = [metrics_socket(directory, i) for i in range(count)]
        self.before_scrape = before_scrape
        self._runner: web.AppRunner | None = None
        self._http: dict[int, ClientSession] = {}

    @classmethod
    def from_env(cls, before_scrape: Callable[[], None] | None = None) -> WorkerMetrics | None:
        """This worker's metrics, or None when the process is not a worker."""
        index = worker_index()
        count = os.environ.get(WORKER_COUNT_ENV, "")
        directory = os.environ.get(METRICS_DIR_ENV, "")
        if index is None or not count.isdigit() or not directory:
            return None
        return cls(index, int(count), directory, before_scrape)

    def own(self) -> bytes:
        if self.before_scrape is not None:
            self.before_scrape()
        return prometheus_client.generate_latest()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._own)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # A socket file left by this worker's previous life is replaced.
        await web.UnixSite(self._runner, self.sockets[self.index]).start()
        self._http = {i: ClientSession(connector=UnixConnector(path), timeout=ClientTimeout(total=2))
                      for i, path in enumerate(self.sockets) if i != self.index}

    async def stop(self) -> None:
        for session in self._http.values():
            await session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _own(self, _: web.Request) -> web.Response:
        return web.Response(body=self.own(),
                            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def exposition(self) -> bytes:
        """Every worker's series, labelled; a worker that does not answer is left out."""
        texts = await asyncio.gather(*(self._fetch(i) for i in range(len(self.sockets))))
        merged: dict[str, Metric] = {}
        for index, text in enumerate(texts):
            if text is None:
                continue
            for family, sample in _labelled(text_string_to_metric_families(text), f"w{index}"):
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation,
                                                        family.type, family.unit)
                into.samples.append(sample)
        return prometheus_client.generate_latest(_Families(merged.values()))

    async def _fetch(self, index: int) -> str | None:
        if index == self.index:
            return self.own().decode()
        try:
            async with self._http[index].get("http://worker/metrics") as response:
                return await response.text() if response.status == 200 else None
        except (ClientError, OSError, asyncio.TimeoutError):
            return None


class _Families:
    def __init__(self, families: Iterable[Metric]):
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families
