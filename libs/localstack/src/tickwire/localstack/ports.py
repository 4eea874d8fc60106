"""Free loopback ports for processes that are started later and bind them themselves.

A port taken from the kernel's ephemeral range (bind to port 0) can be handed to an outgoing
connection in the seconds before the process meant to listen on it starts: a test stack
opens dozens of client connections (Kafka, Redis, HTTP) while it comes up, and HAProxy,
started last, then fails with "Address already in use". So `free_port` hands out ports
below the ephemeral range, which the kernel never picks for outgoing connections, and keeps
port + 10000 (a Redis Cluster node's bus port) below it too.

Each pytest-xdist worker draws from its own slice of that pool, and one process never hands
out the same port twice until its slice wraps, so two workers, or two stacks in one worker,
cannot be given the same port.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

POOL_FIRST = 10_000
CLUSTER_BUS_OFFSET = 10_000
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_low(range_file: Path = _RANGE_FILE) -> int:
    """The first port the kernel may pick for an outgoing connection (32768 if unknown)."""
    try:
        return int(range_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def pool(worker: str | None, workers: str | None, low: int) -> range:
    """The ports this process may hand out: below `low` with their bus port below it too,
    sliced by xdist worker ("gw3" of 4). Empty when the ephemeral range starts too low."""
    end = min(low, 65_536) - CLUSTER_BUS_OFFSET
    if end - POOL_FIRST < 1_000:
        return range(0)
    index = int(worker[2:]) if worker and worker.startswith("gw") and worker[2:].isdigit() else 0
    count = max(1, int(workers)) if workers and workers.isdigit() else 1
    size = (end - POOL_FIRST) // max(count, index + 1)
    first = POOL_FIRST + index * size
    return range(first, first + size)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _kernel_port(bus_too: bool) -> int:
    """The fallback when there is no pool: an ephemeral port, as bind(0) gives one."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not bus_too or (port + CLUSTER_BUS_OFFSET < 65_536
                           and _bindable(port + CLUSTER_BUS_OFFSET)):
            return port


class PortPool:
    """Hands out each port of `ports` once per cycle, skipping ports something holds."""

    def __init__(self, ports: range):
        self._ports = ports
        self._lock = threading.Lock()
        start = random.randrange(len(ports)) if ports else 0
        self._cycle: Iterator[int] = itertools.islice(
            itertools.cycle(ports), start, None) if ports else iter(())

    def take(self, bus_too: bool = False) -> int:
        """A port nothing is bound to now (and, with `bus_too`, port + 10000 neither)."""
        if not self._ports:
            return _kernel_port(bus_too)
        with self._lock:
            for _ in range(len(self._ports)):
                port = next(self._cycle)
                if _bindable(port) and (not bus_too or _bindable(port + CLUSTER_BUS_OFFSET)):
                    return port
        raise OSError(f"no free port in {self._ports.start}-{self._ports.stop - 1}")


_POOL = PortPool(pool(os.environ.get("PYTEST_XDIST_WORKER"),
                      os.environ.get("PYTEST_XDIST_WORKER_COUNT"), ephemeral_low()))


def free_port() -> int:
    """A loopback port to give a process that binds it later (see the module docstring)."""
    return _POOL.take()


def free_node_ports(count: int) -> list[int]:
    """Ports for Redis Cluster nodes: each node also listens on port + 10000 (its bus)."""
    return [_POOL.take(bus_too=True) for _ in range(count)]
