"""What the deployment checks share: the repository, the contract's ports, the helm and
haproxy binaries, rendering the chart, and reading metric names from the services' code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "k8s"
KUBE_VERSION = "1.30.0"

# DESIGN.md §2, the default ports: the contract these deployments must keep.
DESIGN_PORTS = {
    "load-balancer": 8080,
    "ws-edge-1": 8081,
    "ws-edge-2": 8091,
    "registry": 8082,
    "ingestor": 8083,
    "redis": 6379,
    "kafka": 9092,
    "kafka-controller": 9093,
}

# services/<dir>: (distribution, console script, settings prefix, default port)
SERVICES = {
    "ingestor": ("tickwire-ingestor", "tickwire-ingestor", "TICKWIRE_INGESTOR", 8083),
    "registry": ("tickwire-registry", "tickwire-registry", "TICKWIRE_REGISTRY", 8082),
    "ws-edge": ("tickwire-edge", "tickwire-edge", "TICKWIRE_EDGE", 8081),
}

# The values files the chart is rendered with, by name.
VALUES_FILES = {
    "default": [],
    "production": [CHART / "values-production.yaml"],
    "cluster": [CHART / "values-cluster.yaml"],
    "all-features": [Path(__file__).parent / "values-all-features.yaml"],
}

# What prometheus_client's default collectors export on Linux, and what Prometheus adds.
STANDARD_METRICS = {
    "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total",
    "process_open_fds", "process_max_fds", "process_start_time_seconds", "up",
}

# A prometheus_client metric, or a family a custom collector yields (the edge's hot-path
# counters): `Counter("name"`, `CounterMetricFamily(\n    "name"`.
_METRIC_DEFINITION = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary)(?:MetricFamily)?\(\s*[\"']([a-zA-Z_:][a-zA-Z0-9_:]*)[\"']")


def design_md() -> Path | None:
    """shared/DESIGN.md beside the clone (where CI and the sessions have it), if present."""
    for parent in REPO.parents:
        candidate = parent / "shared" / "DESIGN.md"
        if candidate.is_file():
            return candidate
    return None


def helm_candidates() -> list[Path]:
    """Where helm may be: $TICKWIRE_HELM, install-helm.sh's cache folder, PATH (in order)."""
    cache_root = Path(os.environ.get("TICKWIRE_CACHE_DIR")
                      or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickwire")
    helm_dir = Path(os.environ.get("TICKWIRE_HELM_DIR") or cache_root / "helm")
    found = [Path(os.environ["TICKWIRE_HELM"])] if os.environ.get("TICKWIRE_HELM") else []
    found.append(helm_dir / "helm")
    on_path = shutil.which("helm")
    if on_path:
        found.append(Path(on_path))
    return found


def find_haproxy() -> str | None:
    return shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


@dataclass
class Rendered:
    """The objects `helm template` produced for one values file."""

    name: str
    objects: list[dict]

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, component: str) -> dict:
        found = [o for o in self.of_kind(kind)
                 if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]
        assert len(found) == 1, f"{self.name}: expected one {kind} of {component}, got {len(found)}"
        return found[0]


def helm_args(values: list[Path]) -> list[str]:
    return [arg for path in values for arg in ("-f", str(path))]


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess:
    """helm with its cache and config in /tmp, so a developer's own repositories don't matter."""
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HELM_CACHE_HOME": "/tmp/tickwire-helm/cache",
                               "HELM_CONFIG_HOME": "/tmp/tickwire-helm/config",
                               "HELM_DATA_HOME": "/tmp/tickwire-helm/data"})


def render(helm: str, values: list[Path], *extra: str, kube_version: str = KUBE_VERSION) -> list[dict]:
    result = run_helm(helm, "template", "tickwire", str(CHART), "--namespace", "tickwire",
                      "--kube-version", kube_version, *helm_args(values), *extra)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def exported_metric_names() -> set[str]:
    """Series names the services export, read from their metric definitions in the code."""
    names: set[str] = set(STANDARD_METRICS)
    sources = [*REPO.glob("services/*/src/**/*.py"), *REPO.glob("libs/core/src/**/*.py")]
    for source in sources:
        for kind, name in _METRIC_DEFINITION.findall(source.read_text()):
            if kind == "Counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
            elif kind == "Histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
            elif kind == "Summary":
                names.update({name, f"{name}_sum", f"{name}_count"})
            else:
                names.add(name)
    return names


def metric_names_in(expression: str) -> set[str]:
    """The tickwire_* and process_* series a PromQL expression reads, and `up`."""
    # Label names are not series: drop label matchers and grouping clauses first.
    series = re.sub(r"\{[^}]*\}", "", expression)
    series = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", series)
    names = set(re.findall(r"\b((?:tickwire|process)_[a-z0-9_]+)\b", series))
    if re.search(r"\bup\b", series):
        names.add("up")
    return names


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())
