"""Fixtures of the deployment checks. They need no Redis, Kafka, Docker engine or cluster,
and never skip: a missing tool fails with the command that installs it."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from deploy.support import (DESIGN_PORTS, VALUES_FILES, Rendered, design_md, exported_metric_names,
                            find_haproxy, helm_candidates, render)


@pytest.fixture(scope="session")
def design_ports() -> dict[str, int]:
    """DESIGN_PORTS, checked against DESIGN.md's port table when the document is at hand."""
    design = design_md()
    if design is not None:
        table = design.read_text()
        rows = {
            "load-balancer": r"^\| load balancer[^|]*\| (\d+) \|",
            "ws-edge-1": r"^\| ws-edge #1, #2[^|]*\| (\d+), \d+ \|",
            "ws-edge-2": r"^\| ws-edge #1, #2[^|]*\| \d+, (\d+) \|",
            "registry": r"^\| registry \| (\d+) \|",
            "ingestor": r"^\| ingestor \| (\d+) \|",
            "redis": r"^\| Redis \| (\d+) \|",
            "kafka": r"^\| Kafka[^|]*\| (\d+) \(controller \d+\) \|",
            "kafka-controller": r"^\| Kafka[^|]*\| \d+ \(controller (\d+)\) \|",
        }
        for key, pattern in rows.items():
            match = re.search(pattern, table, re.MULTILINE)
            assert match, f"{design}: no port row for {key} (pattern {pattern!r})"
            assert int(match.group(1)) == DESIGN_PORTS[key], (
                f"{design} says {key} is on {match.group(1)}, tests/deploy expects "
                f"{DESIGN_PORTS[key]}: update DESIGN_PORTS and the deployments together")
    return DESIGN_PORTS


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary: $TICKWIRE_HELM, else deploy/k8s/install-helm.sh's cache, else PATH."""
    candidates = helm_candidates()
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail(f"helm not found (looked at {', '.join(map(str, candidates))}): "
                "install it with deploy/k8s/install-helm.sh", pytrace=False)


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus "
                    "(deploy/local/install.sh --test does)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def haproxy() -> str:
    path = find_haproxy()
    if path is None:
        pytest.fail("haproxy not found: apt-get install haproxy (deploy/local/install.sh does)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session", params=sorted(VALUES_FILES))
def rendered(request, helm) -> Rendered:
    """The chart rendered with each values file in turn."""
    return Rendered(request.param, render(helm, VALUES_FILES[request.param]))


@pytest.fixture(scope="session")
def rendered_by_name(helm) -> dict[str, Rendered]:
    return {name: Rendered(name, render(helm, files)) for name, files in VALUES_FILES.items()}


@pytest.fixture(scope="session")
def exported_metrics() -> set[str]:
    names = exported_metric_names()
    assert any(n.startswith("tickwire_edge_") for n in names), "found no edge metric definitions"
    return names
