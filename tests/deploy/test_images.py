"""The service images: each Dockerfile builds its own package from the repository root with
uv from the lock, copies every workspace package that package needs, runs unprivileged,
listens on all addresses, checks /healthz, and lets SIGTERM reach the service. The
healthcheck script itself is run against a real HTTP server."""

from __future__ import annotations

import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from deploy.support import REPO, SERVICES

HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


def _workspace_dependencies(directory: str) -> set[str]:
    """Workspace member folders a service needs, transitively (itself included)."""
    members = {}
    for pyproject in [*REPO.glob("libs/*/pyproject.toml"), *REPO.glob("services/*/pyproject.toml")]:
        data = tomllib.loads(pyproject.read_text())
        members[data["project"]["name"]] = (pyproject.parent, data)
    wanted, seen = [SERVICES[directory][0]], set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        _, data = members[name]
        workspace = {n for n, src in data.get("tool", {}).get("uv", {}).get("sources", {}).items()
                     if src.get("workspace")}
        for requirement in data["project"].get("dependencies", []):
            dependency = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)
            if dependency in workspace:
                wanted.append(dependency)
    return {str(members[name][0].relative_to(REPO)) for name in seen}


@pytest.mark.parametrize("directory", sorted(SERVICES))
def test_dockerfile_builds_the_service_from_the_lock(directory):
    distribution, script, prefix, port = SERVICES[directory]
    dockerfile = REPO / "services" / directory / "Dockerfile"
    steps = _instructions(dockerfile)
    pyproject = tomllib.loads((REPO / "services" / directory / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == distribution
    assert script in pyproject["project"]["scripts"]

    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) >= 3, "multi-stage: uv, build, runtime"
    syncs = [args for word, args in steps if word == "RUN" and "uv sync" in args]
    assert syncs, "no uv sync"
    for sync in syncs:
        for flag in ("--frozen", "--no-dev", f"--package {distribution}"):
            assert flag in sync, f"{directory}: `{sync}` lacks {flag}"
    assert "--no-editable" in syncs[-1]

    copied = {args.split()[0] for word, args in steps if word == "COPY" and "--from" not in args}
    missing = _workspace_dependencies(directory) - copied
    assert not missing, f"{directory}/Dockerfile does not copy workspace packages {missing}"

    runtime = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM"):]
    words = [word for word, _ in runtime]
    user = next(args for word, args in runtime if word == "USER")
    assert user.split(":")[0] not in ("0", "root")
    env = " ".join(args for word, args in runtime if word == "ENV")
    assert f"{prefix}_HOST=0.0.0.0" in env and f"{prefix}_PORT={port}" in env
    assert ("EXPOSE", str(port)) in runtime
    healthcheck = next(args for word, args in runtime if word == "HEALTHCHECK")
    assert f'CMD ["python", "/app/healthcheck.py", "{prefix}", "{port}"]' in healthcheck
    assert ("COPY", "deploy/docker/healthcheck.py /app/healthcheck.py") in runtime
    entrypoint = json.loads(next(args for word, args in runtime if word == "ENTRYPOINT"))
    cmd = json.loads(next(args for word, args in runtime if word == "CMD"))
    assert entrypoint == ["/usr/bin/tini", "--"] and cmd == [script], "exec form, tini as PID 1"
    assert words.index("USER") < words.index("CMD")
    assert not any(word == "RUN" and "uv " in args for word, args in runtime), "uv stays in the build stage"


def test_dockerignore_sends_only_what_the_images_need():
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "an allowlist: everything is excluded first"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for directory in SERVICES:
        for word, args in _instructions(REPO / "services" / directory / "Dockerfile"):
            if word == "COPY" and "--from" not in args:
                for source in args.split()[:-1]:
                    assert any(source == a or source.startswith(a + "/") for a in allowed), \
                        f"{directory}/Dockerfile copies {source}, which .dockerignore excludes"
    for secret in ("**/.env", "**/.venv"):
        assert secret in lines


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def _serve(status: int) -> tuple[http.server.HTTPServer, int]:
    handler = type("Probe", (_Probe,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _healthcheck(env: dict[str, str], default_port: str = "1") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HEALTHCHECK), "TICKWIRE_EDGE", default_port],
                          env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", ""])
def test_healthcheck_passes_on_200(host):
    server, port = _serve(200)
    try:
        result = _healthcheck({"TICKWIRE_EDGE_HOST": host, "TICKWIRE_EDGE_PORT": str(port)})
        assert result.returncode == 0, result.stderr
    finally:
        server.shutdown()


def test_healthcheck_uses_the_default_port_when_none_is_set():
    server, port = _serve(200)
    try:
        assert _healthcheck({}, default_port=str(port)).returncode == 0
    finally:
        server.shutdown()


def test_healthcheck_fails_on_503_and_on_a_closed_port():
    server, port = _serve(503)
    try:
        result = _healthcheck({"TICKWIRE_EDGE_PORT": str(port)})
        assert result.returncode == 1 and "503" in result.stderr
    finally:
        server.shutdown()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    result = _healthcheck({"TICKWIRE_EDGE_PORT": str(closed)})
    assert result.returncode == 1 and f"127.0.0.1:{closed}" in result.stderr


def _stages(steps: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Instructions by stage name (`FROM image AS name`)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, args in steps:
        if word == "FROM":
            current = stages.setdefault(args.split()[-1] if " AS " in args.upper() else args, [])
        current.append((word, args))
    return stages


def test_edge_image_bundles_the_dashboard_it_serves():
    steps = _instructions(REPO / "services" / "ws-edge" / "Dockerfile")
    stages = _stages(steps)
    node = [name for name, stage in stages.items() if "NODE_IMAGE" in stage[0][1]]
    assert node, "no node stage (FROM ${NODE_IMAGE} AS ...)"
    dashboard = stages[node[0]]
    copies = [args for word, args in dashboard if word == "COPY"]
    assert copies[0] == "libs/web-client/package.json libs/web-client/package-lock.json ./", \
        "the lock is copied (and installed) before the sources"
    runs = [args for word, args in dashboard if word == "RUN"]
    assert any("npm ci" in run for run in runs), "dependencies from package-lock.json (npm ci)"
    build = next(run for run in runs if "build-dashboard.mjs" in run)
    out = re.search(r"TICKWIRE_DASHBOARD_OUT=(\S+)", build).group(1)

    served = "services/ws-edge/src/tickwire/edge/static/dashboard"
    app = (REPO / "services/ws-edge/src/tickwire/edge/app.py").read_text()
    assert 'STATIC = Path(__file__).parent / "static"' in app
    assert "../../services/ws-edge/src/tickwire/edge/static/dashboard" in \
        (REPO / "libs/web-client/scripts/build-dashboard.mjs").read_text()
    build_stage = stages["build"]
    copy = f"--from={node[0]} {out} {served}"
    assert ("COPY", copy) in build_stage, f"build stage lacks COPY {copy}"
    last_sync = max(i for i, (word, args) in enumerate(build_stage) if "uv sync" in args)
    assert build_stage.index(("COPY", copy)) < last_sync, "the wheel is built after the copy"
    # hatchling drops .gitignore'd files from wheels, and the dashboard is .gitignore'd:
    # the context must not carry a .gitignore.
    allowed = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip().startswith("!")]
    assert not any(".gitignore" in line for line in allowed)
