"""For every test in the repository: when pytest-timeout fails a hung test, it also prints
where each asyncio task of the running loop is waiting. Its own dump shows the threads
only, and a test stuck on an await shows there as nothing but the loop's select()."""

from __future__ import annotations

import asyncio
import types

import pytest_timeout

_dump_thread_stacks = pytest_timeout.dump_stacks


def await_chain(task: asyncio.Task) -> list[str]:
    """`file:line in function` for each coroutine, outermost first, down to the awaited object."""
    lines = []
    awaited = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None) \
            or getattr(awaited, "ag_frame", None)
        if frame is None:
            lines.append(f"  awaiting {awaited!r}")
            break
        lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        nxt = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None) \
            or getattr(awaited, "ag_await", None)
        if nxt is None or not isinstance(nxt, (types.CoroutineType, types.GeneratorType,
                                                types.AsyncGeneratorType)):
            if nxt is not None:
                lines.append(f"  awaiting {nxt!r}")
            break
        awaited = nxt
    return lines


def _dump_stacks_and_tasks(terminal) -> None:
    _dump_thread_stacks(terminal)
    loop = asyncio._get_running_loop()
    if loop is None:
        return
    for task in asyncio.all_tasks(loop):
        terminal.sep("~", title=f"asyncio task {task.get_name()}")
        terminal.write("\n".join(await_chain(task)) + "\n")


pytest_timeout.dump_stacks = _dump_stacks_and_tasks
