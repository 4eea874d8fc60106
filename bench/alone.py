"""One trial module run by itself (`python -m bench.upstream`, `python -m bench.coldstart`):
Redis and Kafka of its own, the trial, its result with figures as JSON on stdout and,
when asked, in a file. Everything started is stopped on the way out."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path


def run_alone(name: str, trial: Callable[..., dict], figures: Callable[[dict], dict],
              out: Path | None, *args: object) -> int:
    from bench.run import Stack

    workdir = Path(tempfile.mkdtemp(prefix=f"tickwire-{name}-"))
    stack = Stack(workdir)
    try:
        stack.start()
        result = trial(stack, workdir, *args)
    finally:
        stack.stop()
    result["figures"] = figures(result)
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.write_text(text + "\n")
    return 0
