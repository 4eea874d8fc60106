"""docker-compose.yml and what it mounts: valid against the compose-spec schema (the copy
PyPI check-jsonschema ships), complete, wired to files that exist, on DESIGN.md's ports, and
its Prometheus rules and Grafana dashboard reading only metrics the services export."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from deploy.support import REPO, SERVICES, load_yaml, metric_names_in

COMPOSE = REPO / "docker-compose.yml"
TICKWIRE = {"registry": "registry", "ingestor": "ingestor", "edge-1": "ws-edge", "edge-2": "ws-edge"}
EXPECTED = {"redis", "kafka", "registry", "ingestor", "edge-1", "edge-2", "haproxy",
            "otel-collector", "jaeger", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


def _compose_schema() -> dict:
    schema = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(schema.read_text())


def _expand(value: str) -> str:
    """Compose interpolation with every variable unset: ${VAR:-default} becomes default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def _published(service: dict) -> dict[int, int]:
    """host port -> container port of a service's short-syntax port mappings."""
    mapping = {}
    for entry in service.get("ports", []):
        host, container = str(entry).rsplit(":", 2)[-2:]
        mapping[int(host)] = int(container)
    return mapping


def _bind_mounts(service: dict) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts.append((source, target))
    return mounts


def test_compose_file_validates_against_the_compose_spec(compose):
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_the_whole_stack_is_there(compose):
    services = compose["services"]
    assert set(services) == EXPECTED
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_tickwire_services_build_from_the_repository_root(compose):
    for name, directory in TICKWIRE.items():
        service = compose["services"][name]
        build = service["build"]
        assert build["context"] == "."
        dockerfile = REPO / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {build['dockerfile']} does not exist"
        assert build["dockerfile"] == f"services/{directory}/Dockerfile"
        assert _expand(service["image"]).startswith(f"tickwire/{directory}:")


def test_ports_follow_design_md(compose, design_ports):
    services = compose["services"]
    expected = {
        "haproxy": {design_ports["load-balancer"]: 8080},
        "edge-1": {design_ports["ws-edge-1"]: SERVICES["ws-edge"][3]},
        "edge-2": {design_ports["ws-edge-2"]: SERVICES["ws-edge"][3]},
        "registry": {design_ports["registry"]: SERVICES["registry"][3]},
        "ingestor": {design_ports["ingestor"]: SERVICES["ingestor"][3]},
        "redis": {design_ports["redis"]: 6379},
        "kafka": {design_ports["kafka"]: 9092},
    }
    for name, ports in expected.items():
        assert _published(services[name]) == ports, f"{name} publishes {services[name].get('ports')}"
    kafka = services["kafka"]["environment"]
    assert f"CONTROLLER://:{design_ports['kafka-controller']}" in kafka["KAFKA_LISTENERS"]
    assert "EXTERNAL://localhost:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    # The services inside the network reach Kafka on its INTERNAL listener.
    internal = re.search(r"INTERNAL://kafka:(\d+)", kafka["KAFKA_ADVERTISED_LISTENERS"]).group(1)
    for name in TICKWIRE:
        env = services[name]["environment"]
        assert _expand(env["TICKWIRE_KAFKA_BOOTSTRAP_SERVERS"]) == f"kafka:{internal}"
        assert _expand(env["TICKWIRE_REDIS_URL"]) == "redis://redis:6379/0"


def test_start_up_is_ordered_by_health(compose):
    services = compose["services"]
    for name in ("redis", "kafka", *TICKWIRE, "haproxy", "prometheus", "grafana"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in TICKWIRE:
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["kafka"]["condition"] == "service_healthy"
        directory = TICKWIRE[name]
        prefix, port = SERVICES[directory][2], SERVICES[directory][3]
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", "/app/healthcheck.py", prefix, str(port)]
    assert {d: c["condition"] for d, c in services["haproxy"]["depends_on"].items()} == {
        "edge-1": "service_healthy", "edge-2": "service_healthy"}


def test_edges_have_time_to_drain(compose):
    for name in ("edge-1", "edge-2"):
        service = compose["services"][name]
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace > float(service["environment"]["TICKWIRE_EDGE_DRAIN_SECONDS"])


def test_provider_keys_come_from_an_uncommitted_env_file(compose):
    ingestor = compose["services"]["ingestor"]
    assert ingestor["env_file"] == [{"path": ".env", "required": False}]
    example = (REPO / ".env.example").read_text()
    for variable in ("TICKWIRE_INGESTOR_TWELVEDATA_API_KEY", "TICKWIRE_INGESTOR_ALPHAVANTAGE_API_KEY"):
        assert re.search(rf"^{variable}=$", example, re.MULTILINE), f".env.example lacks {variable}="
        for name, service in compose["services"].items():
            assert variable not in (service.get("environment") or {}), f"{name} sets {variable} inline"
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/.env" in ignored or ".env" in ignored
    assert ".env" in (REPO / ".dockerignore").read_text()


def test_every_mounted_file_exists(compose):
    for name, service in compose["services"].items():
        for source, _ in _bind_mounts(service):
            assert (REPO / source).exists(), f"{name} mounts missing {source}"


def test_edge_ids_match_the_haproxy_servers_and_cookies(compose):
    haproxy = compose["services"]["haproxy"]
    (source, target), = _bind_mounts(haproxy)
    assert target == "/usr/local/etc/haproxy/haproxy.cfg"
    config = (REPO / source).read_text()
    servers = re.findall(r"^\s*server (\S+) (\S+):(\d+) .*\bcookie (\S+)", config, re.MULTILINE)
    assert len(servers) == 2
    for name, host, port, cookie in servers:
        assert host in compose["services"], f"haproxy points at unknown service {host}"
        env = compose["services"][host]["environment"]
        assert env["TICKWIRE_EDGE_ID"] == name == cookie
        assert int(port) == SERVICES["ws-edge"][3]
    assert re.search(r"^\s*bind :8080$", config, re.MULTILINE)
    assert "cookie TICKWIRE_EDGE insert indirect nocache" in config
    assert "http-check send meth GET uri /healthz" in config


def test_prometheus_scrapes_every_metrics_endpoint(compose):
    prometheus = compose["services"]["prometheus"]
    mounts = dict((target, source) for source, target in _bind_mounts(prometheus))
    config = load_yaml(REPO / mounts["/etc/prometheus/prometheus.yml"])
    targets = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                targets[target] = static.get("labels", {}).get("tickwire_service")
    for target in targets:
        host = target.rpartition(":")[0]
        assert host == "localhost" or host in compose["services"], f"scrape target {target}: no such service"
    for name, directory in TICKWIRE.items():
        assert targets.get(f"{name}:{SERVICES[directory][3]}") == directory, f"{name} is not scraped"
    rules = [target for target in mounts if target.startswith("/etc/prometheus/rules/")]
    assert rules and config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert all(Path(r).suffix == ".yml" for r in rules)


def test_alert_rules_read_only_exported_metrics(compose, exported_metrics):
    mounts = {target: source for source, target in _bind_mounts(compose["services"]["prometheus"])}
    rule_files = [REPO / source for target, source in mounts.items() if target.startswith("/etc/prometheus/rules/")]
    alerts = []
    for path in rule_files:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
                assert rule["labels"]["severity"] in {"critical", "warning", "info"}
                assert rule["annotations"]["summary"]
                expr = rule["expr"]
                assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
                missing = metric_names_in(expr) - exported_metrics
                assert not missing, f"alert {rule['alert']} reads metrics nobody exports: {missing}"
                alerts.append(rule["alert"])
    assert len(alerts) == len(set(alerts))
    # The seed's alerts: an edge down, error rate, latency, memory, connections dropping.
    for wanted in ("TickwireServiceDown", "TickwireEdgeErrorRateHigh", "TickwireIngestLatencyHigh",
                   "TickwireMemoryHigh", "TickwireEdgeConnectionsDropped"):
        assert wanted in alerts


def test_memory_alert_matches_the_container_limit(compose):
    rules = load_yaml(REPO / "deploy/compose/alerts.yml")
    memory = next(r for g in rules["groups"] for r in g["rules"] if r["alert"] == "TickwireMemoryHigh")
    limit = int(re.search(r"/ (\d+)", memory["expr"]).group(1))
    for name in TICKWIRE:
        assert compose["services"][name]["mem_limit"] == "512m"
    assert limit == 512 * 1024 * 1024


def test_grafana_dashboard_is_provisioned_and_reads_exported_metrics(compose, exported_metrics):
    grafana = compose["services"]["grafana"]
    mounts = {target: REPO / source for source, target in _bind_mounts(grafana)}
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = load_yaml(provisioning / "datasources" / "datasources.yml")["datasources"]
    uids = {d["uid"] for d in datasources}
    provider = load_yaml(provisioning / "dashboards" / "dashboards.yml")["providers"][0]
    dashboards_dir = mounts[provider["options"]["path"]]
    dashboards = sorted(dashboards_dir.glob("*.json"))
    assert dashboards, f"no dashboard in {dashboards_dir}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards_dir / Path(home).name).is_file()
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        assert panels, path
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels:
            assert panel["datasource"]["uid"] in uids, f"{panel['title']}: unknown data source"
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                missing = metric_names_in(target["expr"]) - exported_metrics
                assert not missing, f"panel {panel['title']!r} reads metrics nobody exports: {missing}"


def test_traces_flow_from_the_services_to_jaeger(compose):
    collector = compose["services"]["otel-collector"]
    mounts = {target: REPO / source for source, target in _bind_mounts(collector)}
    config = load_yaml(mounts["/etc/otelcol-contrib/config.yaml"])
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http.endswith(":4318")
    exporter = config["exporters"]["otlp/jaeger"]["endpoint"]
    assert exporter.split(":")[0] in compose["services"]
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]
    for name in TICKWIRE:
        env = compose["services"][name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        assert env["OTEL_SERVICE_NAME"].startswith("tickwire-")


def test_tls_override_validates_and_mounts_files_that_exist():
    override = load_yaml(REPO / "deploy" / "compose" / "tls.yml")
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(override)]
    assert not errors, "\n".join(errors)
    assert set(override["services"]) == {"haproxy"}
    for source, _ in _bind_mounts(override["services"]["haproxy"]):
        assert (REPO / source).exists(), f"tls.yml mounts missing {source}"


def test_redis_and_kafka_can_be_external_clusters(compose):
    """Standalone containers by default; an external Redis Cluster and multi-broker Kafka
    through the same variables the services read."""
    env = compose["x-tickwire-env"]
    defaults = {name: _expand(str(value)) for name, value in env.items()}
    assert defaults["TICKWIRE_REDIS_MODE"] == "standalone"
    assert defaults["TICKWIRE_REDIS_URL"] == "redis://redis:6379/0"
    assert (defaults["TICKWIRE_KAFKA_REPLICATION_FACTOR"], defaults["TICKWIRE_KAFKA_MIN_INSYNC_REPLICAS"]) == ("1", "1")
    for name in ("TICKWIRE_REDIS_URL", "TICKWIRE_REDIS_MODE", "TICKWIRE_KAFKA_BOOTSTRAP_SERVERS",
                 "TICKWIRE_KAFKA_REPLICATION_FACTOR", "TICKWIRE_KAFKA_MIN_INSYNC_REPLICAS"):
        assert str(env[name]).startswith(f"${{{name}:-"), name
