"""HAProxy configurations pass `haproxy -c`: the one `make run` renders (through
tickwire.localstack.render_haproxy, exactly as the local stack does, TLS listener included)
and the docker compose ones (plain, and with deploy/compose/tls.yml's TLS listener)."""

from __future__ import annotations

import subprocess

from tickwire.localstack import ensure_tls, render_haproxy

from deploy.support import REPO, load_yaml


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


def test_make_run_tls_listener_is_valid_with_the_generated_certificate(haproxy, tmp_path):
    tls = ensure_tls(tmp_path / "tls")
    config = render_haproxy(8080, [("edge-1", 8081)], tmp_path / "haproxy.cfg", tls=(8443, tls.server_pem))
    result = _check(haproxy, config)
    assert result.returncode == 0, f"haproxy -c {config}:\n{result.stdout}{result.stderr}"
    assert f"bind 127.0.0.1:8443 ssl crt {tls.server_pem}" in config.read_text()
    assert "timeout http-request 10s" in config.read_text()


def test_compose_tls_listener_is_valid_with_a_mounted_certificate(haproxy, tmp_path):
    """haproxy.cfg + haproxy-tls.cfg as deploy/compose/tls.yml loads them, with the mounted
    certificate's path pointed at a generated one."""
    tls = ensure_tls(tmp_path / "tls")
    extra = (REPO / "deploy/compose/haproxy-tls.cfg").read_text()
    assert "crt /etc/tickwire/tls/server.pem" in extra
    local = tmp_path / "tls.cfg"
    local.write_text(extra.replace("/etc/tickwire/tls/server.pem", str(tls.server_pem)))
    result = subprocess.run([haproxy, "-c", "-f", str(REPO / "deploy/compose/haproxy.cfg"),
                             "-f", str(local)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    compose_tls = load_yaml(REPO / "deploy/compose/tls.yml")["services"]["haproxy"]
    # source:target[:ro], the source possibly ${VAR:?message}: split from the right.
    mounts = {v.rsplit(":", 2)[1]: v.rsplit(":", 2)[0] for v in compose_tls["volumes"]}
    assert mounts["/usr/local/etc/haproxy/tls.cfg"] == "./deploy/compose/haproxy-tls.cfg"
    assert mounts["/etc/tickwire/tls"].startswith("${TICKWIRE_TLS_DIR")
    assert compose_tls["command"][-1] == "/usr/local/etc/haproxy/tls.cfg"
    assert "8443:8443" in compose_tls["ports"]


def test_every_haproxy_config_bounds_the_request_head(haproxy):
    for config in (REPO / "deploy/local/haproxy.cfg.in", REPO / "deploy/compose/haproxy.cfg"):
        assert "timeout http-request 10s" in config.read_text(), config
