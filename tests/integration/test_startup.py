"""A bad setting stops a service at start with one line naming the variable."""

from __future__ import annotations

import pytest

from tickwire.localstack import free_port


def _run_to_exit(stack, module: str, env: dict[str, str]) -> tuple[int, list[str]]:
    process = stack.launcher.spawn(module, module.rsplit(".", 1)[-1] + "-bad", free_port(), env)
    stack.started.append(process)
    code = process.proc.wait(timeout=60)
    return code, [line for line in process.log_tail(50).splitlines() if line.strip()]


@pytest.mark.parametrize("module, env, variable", [
    ("tickwire.edge", {"TICKWIRE_EDGE_PORT": "eighty"}, "TICKWIRE_EDGE_PORT"),
    ("tickwire.registry", {"TICKWIRE_REGISTRY_LEASE_SECONDS": "-1"},
     "TICKWIRE_REGISTRY_LEASE_SECONDS"),
    ("tickwire.ingestor", {"TICKWIRE_INGESTOR_PROVIDERS": "bloomberg"},
     "TICKWIRE_INGESTOR_PROVIDERS"),
    ("tickwire.edge", {"TICKWIRE_REDIS_URL": "http://nowhere"}, "TICKWIRE_REDIS_URL"),
    ("tickwire.edge", {"TICKWIRE_KAFKA_BOOTSTRAP_SERVERS": "localhost"},
     "TICKWIRE_KAFKA_BOOTSTRAP_SERVERS"),
    ("tickwire.ingestor", {"TICKWIRE_REDIS_MODE": "sentinel"}, "TICKWIRE_REDIS_MODE"),
])
def test_invalid_value_names_the_variable(stack, module, env, variable):
    code, lines = _run_to_exit(stack, module, env)
    assert code == 2
    assert len(lines) == 1 and variable in lines[0], lines


@pytest.mark.parametrize("module", ["tickwire.edge", "tickwire.registry", "tickwire.ingestor"])
def test_unreachable_redis_names_the_variable(stack, module):
    unused = free_port()
    code, lines = _run_to_exit(stack, module, {
        "TICKWIRE_REDIS_URL": f"redis://127.0.0.1:{unused}/0",
        "TICKWIRE_STARTUP_TIMEOUT_SECONDS": "1.5",
    })
    assert code == 2
    assert len(lines) == 1 and "TICKWIRE_REDIS_URL" in lines[0] and "unreachable" in lines[0]


def test_unreachable_kafka_names_the_variable(stack):
    code, lines = _run_to_exit(stack, "tickwire.registry", {
        "TICKWIRE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "TICKWIRE_STARTUP_TIMEOUT_SECONDS": "2",
    })
    assert code == 2
    assert len(lines) == 1 and "TICKWIRE_KAFKA_BOOTSTRAP_SERVERS" in lines[0]


def test_cluster_mode_against_a_single_redis_names_the_url(stack):
    code, lines = _run_to_exit(stack, "tickwire.registry", {
        "TICKWIRE_REDIS_MODE": "cluster", "TICKWIRE_STARTUP_TIMEOUT_SECONDS": "1.5"})
    assert code == 2
    assert len(lines) == 1 and "TICKWIRE_REDIS_URL" in lines[0], lines
    assert "Cluster mode is not enabled" in lines[0]
