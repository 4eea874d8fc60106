"""CPU time of the processes a trial measures, to the nanosecond, and how long they waited
for a CPU.

`/proc/<pid>/stat` (what psutil reads) counts in 10 ms clock ticks: too coarse for a short
trial (a 60-socket storm costs Centrifugo a few milliseconds, which reads as 0). The
kernel's per-process CPU clock counts every thread of the process, ended threads included,
in nanoseconds; the user/system split is only in ticks, so it still comes from psutil.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

CPUCLOCK_SCHED = 2  # the scheduler's runtime clock, as clock_getcpuclockid(3) builds it


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a whole process (0.0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        return time.clock_gettime((~pid << 3) | CPUCLOCK_SCHED)
    except OSError:
        return 0.0


def cpu_seconds(pid: int | None, kind: str = "both") -> float:
    """CPU seconds of a process: "both" to the nanosecond, or only "user" / "system"."""
    if kind == "both":
        return process_cpu_seconds(pid)
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return {"user": times.user, "system": times.system}[kind]


def tree(pid: int) -> list[int]:
    """`pid` and its live descendants (an edge with workers: the parent and each worker)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def tree_cpu_seconds(pid: int | None, kind: str = "both") -> float:
    return 0.0 if pid is None else sum(cpu_seconds(p, kind) for p in tree(pid))


def runqueue_wait_seconds(pid: int | None) -> float:
    """Seconds the live threads of `pid` and its descendants spent runnable but waiting for
    a CPU (/proc/<pid>/task/*/schedstat, second field). An event loop that waits there
    runs its timers late however short its own passes are: on a machine whose cores the
    load generators share, part of the loop lag is this."""
    total = 0
    for process in ([] if pid is None else tree(pid)):
        try:
            tasks = list(Path(f"/proc/{process}/task").iterdir())
        except OSError:
            continue  # gone meanwhile
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended meanwhile
    return total / 1e9


def machine_busy_seconds() -> float:
    """CPU seconds the machine spent on anything but idling and waiting on I/O."""
    busy = psutil.cpu_times()
    return sum(busy) - busy.idle - getattr(busy, "iowait", 0.0)
