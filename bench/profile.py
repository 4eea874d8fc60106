"""Where the edge's time goes: py-spy's collapsed stacks summarised as top frames.

`python -m bench.profile FILE.raw` prints the summary of a saved profile."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_LOCATION = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    """`func (…/site-packages/aiohttp/web_ws.py:123)` → `func (aiohttp/web_ws.py)`."""
    match = _LOCATION.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(raw: Path, top: int = 30) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
        leaf = frames[-1]
        files[leaf[leaf.rfind("(") + 1:-1].split("/")[0] if "(" in leaf else leaf] += n
    if not total:
        return f"{raw}: no samples\n"
    lines = [f"py-spy profile {raw.name}: {total} samples of the edge's busy time", "",
             "self time (where the CPU is):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive time (what it is spent under):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "self time by package / module:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in files.most_common(15)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1])))
