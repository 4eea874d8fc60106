"""A child process that is always stopped by its own PID, and readiness waits.

A ManagedProcess can be started again after it exited: the same command line, environment
and log file, so a restart comes back on the same ports and data directory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


class StartError(RuntimeError):
    """A process exited or did not become ready in time; carries the tail of its log."""


class ManagedProcess:
    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        # What "ready" means for this process, set by whoever knows (a port, /readyz);
        # a supervisor asks it again after a restart.
        self.ready: Callable[[], bool] = self.alive

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> ManagedProcess:
        """Spawn the command (again, if it ran before and exited)."""
        if self.alive():
            raise RuntimeError(f"{self.name} is already running as {self.pid}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for `ready`, which also becomes this process's readiness check."""
        self.ready = ready
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StartError(f"{self.name} exited with {self.proc.returncode} before {what}:\n"
                                 f"{self.log_tail()}")
            if ready():
                return
            time.sleep(0.1)
        raise StartError(f"{self.name} not {what} after {timeout:.0f}s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            self.signal(signal.SIGKILL)
            self.proc.wait(5)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_http_ok(process: ManagedProcess, url: str, timeout: float = 60.0) -> None:
    process.wait_until(lambda: http_ok(url), timeout, f"ready at {url}")
