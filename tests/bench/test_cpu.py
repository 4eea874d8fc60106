"""bench/cpu.py reads another process's CPU time to well under a clock tick, ended threads
included, so a short trial (a 60-socket storm) does not read as zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The repository's `bench` package, not the `tests/bench` folder (see test_capacity.py).
sys.path.insert(0, str(REPO))

from bench.cpu import (  # noqa: E402
    cpu_seconds, process_cpu_seconds, runqueue_wait_seconds, tree_cpu_seconds)

# Burns CPU in a thread that then ends, reports its own CPU time, and waits for stdin.
BURNER = """
import sys, threading, time
def burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
worker = threading.Thread(target=burn, args=(0.004,))
worker.start()
worker.join()
print(time.process_time(), flush=True)
sys.stdin.readline()
"""


def test_a_few_milliseconds_of_another_process_are_read_with_its_ended_threads():
    child = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        own_report = float(child.stdout.readline())
        measured = process_cpu_seconds(child.pid)
        # At least what the child counted for itself (its start-up plus the 4 ms thread),
        # and not rounded to 10 ms ticks.
        assert measured >= own_report >= 0.004
        assert round(measured * 100) / 100 != measured
        assert cpu_seconds(child.pid) >= measured
        assert tree_cpu_seconds(child.pid) >= measured
    finally:
        child.stdin.close()
        child.wait(10)


def test_two_busy_processes_on_one_cpu_each_wait_for_it():
    # Pinned to one CPU, two spinning children take turns: each one waits in the run
    # queue while the other runs.
    spin = ("import sys, time\nend = time.process_time() + 0.2\n"
            "while time.process_time() < end: pass\nprint(1, flush=True)\nsys.stdin.readline()")
    cpu = sorted(os.sched_getaffinity(0))[0]
    children = [subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", spin],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(2)]
    try:
        for child in children:
            child.stdout.readline()
        assert sum(runqueue_wait_seconds(child.pid) for child in children) > 0.05
    finally:
        for child in children:
            child.stdin.close()
            child.wait(10)
    assert runqueue_wait_seconds(None) == 0.0


def test_a_process_that_is_gone_reads_as_zero():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    assert process_cpu_seconds(child.pid) == 0.0
    assert process_cpu_seconds(None) == 0.0 == cpu_seconds(None, "user")
