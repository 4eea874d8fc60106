"""The worker supervisor and the merged metrics, on plain child processes (no edge)."""

import os
import signal
import sys
import threading
import time

import prometheus_client
import pytest

from tickwire.edge import workers
from tickwire.edge.workers import Supervisor, WorkerMetrics, available_cores, worker_id


def test_auto_uses_the_cores_this_process_may_use():
    assert 1 <= available_cores() <= (os.cpu_count() or 1)
    assert workers.worker_count("3") == 3
    assert workers.worker_count("auto") == available_cores()
    assert worker_id("edge-1", 0) == "edge-1.w0"


CHILD = """
import os, signal, sys, time
index = os.environ["TICKWIRE_EDGE_WORKER_INDEX"]
open(os.path.join(sys.argv[1], f"{index}.{os.getpid()}"), "w").write(os.environ["TICKWIRE_EDGE_ID"])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
"""


def _pids(folder) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for name in os.listdir(folder):
        index, pid = name.split(".")
        found.setdefault(index, []).append(int(pid))
    return found


def _wait(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_supervisor_restarts_a_dead_worker_and_stops_all_on_sigterm(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "RESTART_BACKOFF", (0.1, 0.2))
    supervisor = Supervisor("pod-1", 2, command=[sys.executable, "-c", CHILD, str(tmp_path)])
    result: list[int] = []
    # The supervisor installs signal handlers, which only the main thread may do: run the
    # waiting side in a thread instead.
    def act():
        _wait(lambda: len(_pids(tmp_path)) == 2)
        assert {open(tmp_path / f).read() for f in os.listdir(tmp_path)} == {"pod-1.w0", "pod-1.w1"}
        first = _pids(tmp_path)["0"][0]
        os.kill(first, signal.SIGKILL)
        _wait(lambda: len(_pids(tmp_path).get("0", [])) == 2)  # restarted, same index
        os.kill(os.getpid(), signal.SIGTERM)
    thread = threading.Thread(target=act)
    thread.start()
    result.append(supervisor.run())
    thread.join()
    assert result == [0]
    assert not os.path.exists(supervisor.metrics_dir)
    for pids in _pids(tmp_path).values():
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


async def test_metrics_of_every_worker_are_merged_with_a_worker_label(tmp_path):
    scrapes = []
    first = WorkerMetrics(0, 2, str(tmp_path), before_scrape=lambda: scrapes.append(0))
    second = WorkerMetrics(1, 2, str(tmp_path))
    await first.start()
    await second.start()
    try:
        await second.stop()
        alone = (await first.exposition()).decode()
        second = WorkerMetrics(1, 2, str(tmp_path))   # a restarted worker, same socket path
        await second.start()
        text = (await first.exposition()).decode()
    finally:
        await first.stop()
        await second.stop()
    assert 'worker="w1"' not in alone and 'worker="w0"' in alone
    lines = [line for line in text.splitlines() if line.startswith("python_info")]
    assert len(lines) == 2 and any('worker="w0"' in l for l in lines) and any('worker="w1"' in l for l in lines)
    assert text.count("# TYPE python_info gauge") == 1 and scrapes == [0, 0]  # one per exposition
    families = list(prometheus_client.parser.text_string_to_metric_families(text))
    assert families  # the merged text parses back
