"""README.md's hand-try commands, run as written against a stack.

A shell block preceded by `<!-- readme-test: run -->` is runnable: each of its lines is
run with bash from the repository root, with the `make run` ports (8080 load balancer,
8082 registry, 8083 ingestor) pointed at this test's stack. Other blocks (make run,
deployment) are left alone, so paragraphs can be added freely; a block that should be
checked gets the marker.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from integration.wsclient import eventually

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- readme-test: run -->"
BLOCK = re.compile(re.escape(MARKER) + r"\s*```(?:sh|bash|console)\n(.*?)```", re.S)
MAKE_RUN_PORTS = {"8080": "lb", "8082": "registry", "8083": "ingestor"}


def runnable_commands(text: str) -> list[str]:
    commands = []
    for block in BLOCK.findall(text):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_runnable_blocks_are_found():
    commands = runnable_commands((ROOT / "README.md").read_text())
    assert any(c.startswith("uv run tickwire quote") for c in commands)
    assert any(c.startswith("uv run tickwire watch") for c in commands)
    assert any(c.startswith("uv run tickwire status") for c in commands)


async def test_readme_commands_work_against_the_stack(stack):
    registry, ingestor = stack.registry(), stack.ingestor()
    stack.edge("edge-1")
    stack.edge("edge-2")
    lb = stack.haproxy()
    ports = {"lb": lb.port, "registry": registry.port, "ingestor": ingestor.port}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_CLI_")}
    env.update(UV_FROZEN="1", COLUMNS="160", NO_COLOR="1",
               TICKWIRE_CLI_URL=lb.url, TICKWIRE_CLI_REGISTRY_URL=registry.url,
               TICKWIRE_CLI_INGESTOR_URL=ingestor.url)

    async def bash(command: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            "bash", "-c", command, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(), 90)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        return process.returncode, out.decode(), err.decode()

    outputs = {}
    for command in runnable_commands((ROOT / "README.md").read_text()):
        local = re.sub(r"127\.0\.0\.1:(808[023])\b",
                       lambda m: f"127.0.0.1:{ports[MAKE_RUN_PORTS[m.group(1)]]}", command)
        if "tickwire status" in local:
            # The registry's view follows Kafka: wait until it lists the edges.
            async def listed():
                code, out, _ = await bash(local)
                return out if code == 0 and "edge-1" in out and "edge-2" in out else None
            outputs[command] = await eventually(listed, timeout=60, interval=1)
            continue
        code, out, err = await bash(local)
        assert code == 0, f"{command!r} exited {code}: {err[-2000:]}"
        assert out.strip(), f"{command!r} printed nothing"
        outputs[command] = out

    by_start = {c.split("#")[0].strip(): out for c, out in outputs.items()}
    watch = next(out for c, out in by_start.items() if c.startswith("uv run tickwire watch"))
    assert len([line for line in watch.splitlines() if not line.startswith("#")]) == 10
    quote = next(out for c, out in by_start.items() if c.startswith("uv run tickwire quote"))
    assert quote.split()[0] == "AAPL"
    status = next(out for c, out in by_start.items() if c.startswith("uv run tickwire status"))
    assert "simulated" in status
    assert any('"symbol":"AAPL"' in out for c, out in by_start.items() if c.startswith("curl"))
    assert any('"websocketRolloutPercent":100' in out for c, out in by_start.items()
               if c.startswith("curl"))
