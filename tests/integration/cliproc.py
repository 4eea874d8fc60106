"""Runs the `tickwire` command as a user would: a child process, its output read as it comes.

`run()` is for commands that end by themselves; `Watch` holds a long-running
`tickwire watch --json` and hands out its JSON lines one at a time, each wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICKWIRE = str(Path(sys.executable).with_name("tickwire"))


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_CLI_")}
    env.update({"COLUMNS": "160", "NO_COLOR": "1"}, **(extra or {}))
    return env


async def run(*args: str, timeout: float = 60.0, program: str = TICKWIRE,
              env: dict[str, str] | None = None) -> Result:
    process = await asyncio.create_subprocess_exec(
        program, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_env(env))
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Result(process.returncode, out.decode(), err.decode())


class Watch:
    """`tickwire … watch --json`, stopped by its PID at `stop()` (SIGINT, then SIGKILL)."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, *args: str, program: str = TICKWIRE,
                    env: dict[str, str] | None = None) -> Watch:
        process = await asyncio.create_subprocess_exec(
            program, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=_env(env))
        return cls(process)

    async def until(self, predicate, timeout: float = 30.0) -> dict[str, Any]:
        """The next JSON line matching `predicate`; every line read is kept in `lines`."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching line in {timeout}s; last {self.lines[-5:]}")
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), left)
            except TimeoutError:
                continue
            if not raw:
                err = await self.process.stderr.read() if self.process.stderr else b""
                raise EOFError(f"watch ended ({self.process.returncode}): {err.decode()[-2000:]}")
            line = json.loads(raw)
            self.lines.append(line)
            if predicate(line):
                return line

    async def stop(self, timeout: float = 15.0) -> int:
        """Interrupt as Ctrl-C does and wait for the exit; kill if it does not come."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode
