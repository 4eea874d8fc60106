"""HAProxy configurations pass `haproxy -c`: the one `make run` renders (through
tickwire.localstack.render_haproxy, exactly as the local stack does) and the docker compose one."""

from __future__ import annotations

import subprocess

from tickwire.localstack import render_haproxy

from deploy.support import REPO


def _check(haproxy: str, config) -> subprocess.CompletedProcess:
    return subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)


def test_make_run_haproxy_config_is_valid(haproxy, tmp_path, design_ports):
    edges = [("edge-1", design_ports["ws-edge-1"]), ("edge-2", design_ports["ws-edge-2"])]
    config = render_haproxy(design_ports["load-balancer"], edges, tmp_path / "haproxy.cfg")
    result = _check(haproxy, config)
    assert result.returncode == 0, f"haproxy -c {config}:\n{result.stdout}{result.stderr}"
    assert "Configuration file is valid" in result.stdout + result.stderr
    text = config.read_text()
    assert f"bind 127.0.0.1:{design_ports['load-balancer']}" in text
    for name, port in edges:
        assert f"server {name} 127.0.0.1:{port} check cookie {name}" in text


def test_compose_haproxy_config_is_valid(haproxy):
    config = REPO / "deploy" / "compose" / "haproxy.cfg"
    result = _check(haproxy, config)
    assert result.returncode == 0, f"haproxy -c {config}:\n{result.stdout}{result.stderr}"
    assert "Configuration file is valid" in result.stdout + result.stderr
    # Warnings are only about the edge names, which resolve inside the compose network.
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "[WARNING]" in line]
    assert all("could not resolve address 'edge-" in line for line in warnings), warnings
