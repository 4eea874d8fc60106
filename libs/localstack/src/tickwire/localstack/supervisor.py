"""Keeps a set of local processes running, like compose's `restart: unless-stopped`.

A child that exits while the supervisor runs is logged (exit code and log tail) and started
again with exponential backoff: the same command line, so the same ports and data
directory. The other children are left alone. Only `stop()` ends them, newest first, each
by its own PID. Children are started (and waited for) by the caller, in dependency order,
before they are handed over; restarts do not block the loop, so a stop is honoured at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tickwire.localstack.process import ManagedProcess


@dataclass(frozen=True)
class Backoff:
    """Delay before the n-th restart in a row: first, doubled each time, at most `cap`.
    A child that stayed up `stable` seconds starts again from `first`."""

    first: float = 1.0
    cap: float = 30.0
    stable: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.first * 2 ** failures)


@dataclass
class _Child:
    process: ManagedProcess
    started_at: float
    failures: int = 0
    restart_at: float | None = None
    awaiting_ready: bool = False


class Supervisor:
    """Owns the children handed to `adopt`; `run` restarts them until `stop`."""

    def __init__(self, log: Callable[[str], None] = print, backoff: Backoff = Backoff(),
                 on_change: Callable[[list[ManagedProcess]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._log = log
        self._backoff = backoff
        self._on_change = on_change or (lambda processes: None)
        self._clock = clock
        self._children: list[_Child] = []
        self._stopping = False
        self._lock = threading.Lock()

    @property
    def processes(self) -> list[ManagedProcess]:
        return [child.process for child in self._children]

    def __getitem__(self, name: str) -> ManagedProcess:
        for child in self._children:
            if child.process.name == name:
                return child.process
        raise KeyError(name)

    def adopt(self, process: ManagedProcess) -> ManagedProcess:
        """Take over a started (and ready) process; returns it."""
        with self._lock:
            self._children.append(_Child(process, self._clock()))
        self._on_change(self.processes)
        return process

    def poll(self) -> None:
        """One pass: note exits, start what is due, report children that are ready again."""
        with self._lock:
            if self._stopping:
                return
            changed = False
            for child in self._children:
                changed |= self._visit(child, self._clock())
        if changed:
            self._on_change(self.processes)

    def _visit(self, child: _Child, now: float) -> bool:
        process = child.process
        if process.alive():
            if child.awaiting_ready and process.ready():
                child.awaiting_ready = False
                self._log(f"{process.name} is ready again (pid {process.pid})")
            if child.failures and now - child.started_at >= self._backoff.stable:
                child.failures = 0
            return False
        if child.restart_at is None:
            delay = self._backoff.delay(child.failures)
            child.restart_at = now + delay
            child.failures += 1
            self._log(f"{process.name} (pid {process.pid}) exited with "
                      f"{process.proc.returncode if process.proc else None}; restarting in "
                      f"{delay:g}s. Last log lines:\n{process.log_tail(10)}")
            return False
        if now < child.restart_at:
            return False
        child.restart_at = None
        try:
            process.start()
        except OSError as exc:
            self._log(f"{process.name} could not be started again: {exc}")
            return False
        child.started_at = now
        child.awaiting_ready = True
        self._log(f"{process.name} restarted (pid {process.pid})")
        return True

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Supervise until `stop` is set (it does not stop the children: `stop()` does)."""
        while not stop.wait(interval):
            self.poll()

    def stop(self) -> None:
        """Stop every child, newest first, by its PID; nothing is restarted afterwards."""
        with self._lock:
            self._stopping = True
            children = list(reversed(self._children))
        for child in children:
            child.process.stop()
