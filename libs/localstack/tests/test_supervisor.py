"""Supervisor with real child processes and an injected clock: restart with doubling
backoff after a crash, the backoff reset after a stable run, no restart once stopped."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tickwire.localstack import Backoff, ManagedProcess, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wait_dead(process: ManagedProcess, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while process.alive():
        assert time.monotonic() < deadline, f"{process.name} still alive"
        time.sleep(0.01)


@pytest.fixture
def supervised(tmp_path: Path):
    clock, log = Clock(), []
    supervisor = Supervisor(log=log.append, backoff=Backoff(first=1, cap=4, stable=60),
                            clock=clock)
    sleep = shutil.which("sleep")
    child = supervisor.adopt(ManagedProcess("child", [sleep, "600"], tmp_path / "child.log").start())
    yield supervisor, child, clock, log
    supervisor.stop()


def test_a_killed_child_is_restarted_after_a_doubling_backoff(supervised):
    supervisor, child, clock, log = supervised
    delays = []
    for _ in range(4):
        old = child.pid
        child.kill()
        supervisor.poll()  # notices the exit, schedules the restart
        assert not child.alive()
        before = clock.now
        while not child.alive():
            clock.now += 0.5
            supervisor.poll()
        delays.append(clock.now - before)
        assert child.pid != old
    assert delays == [1, 2, 4, 4]
    assert sum("exited with -9" in line for line in log) == 4


def test_the_backoff_starts_over_after_a_stable_run(supervised):
    supervisor, child, clock, _ = supervised
    for _ in range(2):
        child.kill()
        supervisor.poll()
        clock.now += 10
        supervisor.poll()
    clock.now += 60
    supervisor.poll()  # up 60 s: stable
    child.kill()
    supervisor.poll()
    clock.now += 1
    supervisor.poll()
    assert child.alive()


def test_nothing_is_restarted_once_stopped(supervised):
    supervisor, child, clock, _ = supervised
    supervisor.stop()
    wait_dead(child)
    clock.now += 100
    supervisor.poll()
    assert not child.alive()


def test_the_change_callback_sees_the_new_pid(tmp_path):
    seen = []
    clock = Clock()
    supervisor = Supervisor(log=lambda line: None, clock=clock,
                            on_change=lambda processes: seen.append([p.pid for p in processes]))
    child = supervisor.adopt(ManagedProcess("child", [shutil.which("sleep"), "600"],
                                            tmp_path / "c.log").start())
    try:
        first = child.pid
        child.kill()
        supervisor.poll()
        clock.now += 1
        supervisor.poll()
        assert seen == [[first], [child.pid]] and child.pid != first
    finally:
        supervisor.stop()
