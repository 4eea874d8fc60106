"""Stand-ins for the edge's pure-logic unit tests (services/ws-edge/tests): a sink that
records what a session writes, and small waits on and counts of event-loop passes (the
last also used by tests/integration)."""

from __future__ import annotations

import asyncio

import orjson


class RecordingSink:
    """The Sink protocol, recording what a session writes."""

    binary = False
    batching = True
    answers_pings = True
    direct = False
    deflate = False

    def __init__(self):
        self.frames: list[dict] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed = False

    async def write(self, frame: bytes) -> None:
        await self.gate.wait()
        self.frames.append(orjson.loads(frame))

    async def ping(self) -> None:
        self.frames.append({"type": "<ping>"})

    async def close(self, code, reason) -> None:
        self.closed = True

    def lost(self) -> None:
        self.closed = True

    def can_write_now(self) -> bool:
        return False

    def write_now(self, frames) -> None:
        raise AssertionError("not a direct sink")

    def prebuilt(self, payload: bytes) -> None:
        return None

    def prebuilt_ping(self) -> None:
        return None


def updates(frames: list[dict]) -> list[tuple[str, int]]:
    found = []
    for frame in frames:
        if frame["type"] == "price_update":
            found.append((frame["symbol"], frame["seq"]))
        elif frame["type"] == "batch_update":
            found += [(u["symbol"], u["seq"]) for u in frame["updates"]]
    return found


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)




class LoopPasses:
    """Counts event-loop passes while in use (`async with LoopPasses() as passes`):
    `passes.count` goes up once per pass, so work that records it shows whether other
    callbacks ran in between."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopPasses:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_) -> None:
        self._task.cancel()
