"""The Helm chart (deploy/k8s): lint, render with each values file, validate every object
against the Kubernetes 1.30 schemas, and check what the deployment promises: probes,
drain before SIGTERM, sticky WebSockets through ingress-nginx, autoscaling, disruption
budgets, secrets, network policies, external or in-release Redis and Kafka."""

from __future__ import annotations

import subprocess

import kubernetes_validate
import pytest
import yaml

from deploy.support import (CHART, REPO, SERVICES, VALUES_FILES, Rendered, helm_args, load_yaml,
                            render, run_helm)

COMPONENTS = {"ws-edge": "edge", "registry": "registry", "ingestor": "ingestor"}

# kubernetes-validate ships the schemas of built-in kinds only. The ServiceMonitor (a
# prometheus-operator CRD) is checked against the fields of its monitoring.coreos.com/v1 API
# that the chart uses.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "namespaceSelector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}},
                                   "any": {"type": "boolean"}}},
                "selector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object"},
                                   "matchExpressions": {"type": "array"}}},
                "endpoints": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"}, "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "relabelings": {
                                "type": "array",
                                "items": {"type": "object", "additionalProperties": False,
                                          "properties": {"sourceLabels": {"type": "array"},
                                                         "targetLabel": {"type": "string"},
                                                         "action": {"type": "string"},
                                                         "regex": {"type": "string"},
                                                         "replacement": {"type": "string"}}}},
                        }}},
            }},
    },
}


# The PrometheusRule (monitoring.coreos.com/v1) fields the chart uses; the rules themselves
# are checked by promtool (test_prometheus_rule_ships_the_compose_rules).
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object", "required": ["groups"], "additionalProperties": False,
            "properties": {"groups": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "rules": {"type": "array", "items": {
                    "type": "object", "required": ["alert", "expr"], "additionalProperties": False,
                    "properties": {"alert": {"type": "string"}, "expr": {"type": "string"},
                                   "for": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                   "labels": {"type": "object"},
                                   "annotations": {"type": "object"}}}}}}}}},
    },
}
CRD_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR_SCHEMA, "PrometheusRule": PROMETHEUS_RULE_SCHEMA}


def _container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env", [])}


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_helm_lint_strict(helm, values):
    result = run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", "1.30.0",
                      *helm_args(VALUES_FILES[values]))
    assert result.returncode == 0, f"helm lint --strict ({values}):\n{result.stdout}\n{result.stderr}"
    assert "0 chart(s) failed" in result.stdout


def test_every_rendered_object_validates_for_kubernetes_1_30(rendered: Rendered):
    import jsonschema

    assert rendered.objects, f"{rendered.name}: nothing rendered"
    for obj in rendered.objects:
        where = f"{rendered.name}: {obj['kind']} {obj['metadata']['name']}"
        if obj["kind"] in CRD_SCHEMAS:
            errors = [e.message for e in jsonschema.Draft202012Validator(CRD_SCHEMAS[obj["kind"]])
                      .iter_errors(obj)]
            assert not errors, f"{where}: {errors}"
            continue
        try:
            kubernetes_validate.validate(obj, "1.30", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {'/'.join(map(str, exc.path))}")


def test_objects_of_the_trial_install(rendered_by_name):
    default = rendered_by_name["default"]
    kinds = sorted(o["kind"] for o in default.objects)
    for component in COMPONENTS:
        default.one("Deployment", component)
        default.one("Service", component)
        default.one("PodDisruptionBudget", component)
        default.one("NetworkPolicy", component)
    default.one("Deployment", "redis")
    default.one("StatefulSet", "kafka")
    for kind in ("ConfigMap", "Secret", "Ingress", "HorizontalPodAutoscaler", "ServiceAccount"):
        assert kind in kinds, f"no {kind} in the default render"
    assert "ServiceMonitor" not in kinds, "the ServiceMonitor must be opt-in"
    assert "PrometheusRule" not in kinds, "the PrometheusRule must be opt-in"


def test_service_deployments_are_probed_bounded_and_unprivileged(rendered: Rendered):
    for component, key in COMPONENTS.items():
        deployment = rendered.one("Deployment", component)
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        port = SERVICES[component][3]
        prefix = SERVICES[component][2]
        where = f"{rendered.name}/{component}"

        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}], where
        env = _env(container)
        assert env[f"{prefix}_HOST"]["value"] == "0.0.0.0", where
        assert env[f"{prefix}_PORT"]["value"] == str(port), where
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, where
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, where
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", where
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"], where
        assert resources["limits"]["memory"], where

        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["automountServiceAccountToken"] is False, where
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
        assert container["image"].rpartition(":")[0].endswith(f"/{component}"), where
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, where

        service = rendered.one("Service", component)
        assert service["spec"]["ports"][0]["targetPort"] == "http", where
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"], where


def test_edges_drain_before_they_are_killed(rendered: Rendered):
    deployment = rendered.one("Deployment", "ws-edge")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    env = _env(container)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env["TICKWIRE_EDGE_DRAIN_SECONDS"]["value"])
    assert pre_stop > 0
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain, (
        f"{rendered.name}: grace {pod['terminationGracePeriodSeconds']} s does not cover "
        f"preStop {pre_stop} s + drain {drain} s")
    assert env["TICKWIRE_EDGE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_older_clusters_get_an_exec_sleep_before_sigterm(helm):
    objects = render(helm, [], kube_version="1.29.0")
    edge = Rendered("1.29", objects).one("Deployment", "ws-edge")
    assert _container(edge)["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}


def test_ingress_is_sticky_websocket_friendly_and_tls(rendered: Rendered):
    ingress = rendered.one("Ingress", "ws-edge")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "affinity"] == "cookie"
    assert notes[prefix + "affinity-mode"] == "persistent"
    assert notes[prefix + "session-cookie-name"]
    assert int(notes[prefix + "session-cookie-max-age"]) > 0
    assert int(notes[prefix + "proxy-read-timeout"]) >= 3600
    assert int(notes[prefix + "proxy-send-timeout"]) >= 3600
    assert notes[prefix + "proxy-buffering"] == "off", "SSE events must not wait in a buffer"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    host = spec["rules"][0]["host"]
    assert spec["tls"] and host in spec["tls"][0]["hosts"] and spec["tls"][0]["secretName"]
    backend = spec["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": rendered.one("Service", "ws-edge")["metadata"]["name"],
                       "port": {"name": "http"}}


def test_ingress_bounds_the_request_head_only_when_snippets_are_allowed(rendered_by_name):
    snippet = "nginx.ingress.kubernetes.io/server-snippet"
    default = rendered_by_name["default"].one("Ingress", "ws-edge")["metadata"]["annotations"]
    assert snippet not in default, "controllers reject snippet annotations unless allowed"
    allowed = rendered_by_name["all-features"].one("Ingress", "ws-edge")["metadata"]["annotations"]
    assert allowed[snippet] == "client_header_timeout 10s;"


def test_edges_autoscale_on_cpu_and_optionally_on_connections(rendered_by_name):
    for name, rendered in rendered_by_name.items():
        hpa = rendered.one("HorizontalPodAutoscaler", "ws-edge")
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["name"] == rendered.one("Deployment", "ws-edge")["metadata"]["name"]
        assert "replicas" not in rendered.one("Deployment", "ws-edge")["spec"], \
            f"{name}: the HPA owns the edge replica count"
        assert 2 <= spec["minReplicas"] <= spec["maxReplicas"]
        kinds = [m["type"] for m in spec["metrics"]]
        assert kinds[0] == "Resource" and spec["metrics"][0]["resource"]["name"] == "cpu"
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    pods_metric = rendered_by_name["all-features"].one("HorizontalPodAutoscaler", "ws-edge")["spec"]["metrics"][1]
    assert pods_metric["type"] == "Pods"
    assert pods_metric["pods"]["metric"]["name"] == "tickwire_edge_connections"
    assert "Pods" not in [m["type"] for m in rendered_by_name["default"]
                          .one("HorizontalPodAutoscaler", "ws-edge")["spec"]["metrics"]]


def test_disruption_budgets_never_block_a_drain(rendered: Rendered):
    for component in COMPONENTS:
        pdb = rendered.one("PodDisruptionBudget", component)
        assert pdb["spec"]["maxUnavailable"] >= 1
        assert pdb["spec"]["selector"]["matchLabels"] == \
            rendered.one("Deployment", component)["spec"]["selector"]["matchLabels"]


def test_provider_keys_reach_only_the_ingestor(rendered_by_name):
    rendered = rendered_by_name["all-features"]
    secret = rendered.of_kind("Secret")[0]
    assert set(secret["stringData"]) == {"twelvedata-api-key", "alphavantage-api-key", "edge-jwt-secret"}
    ingestor = _env(_container(rendered.one("Deployment", "ingestor")))
    for variable, key in (("TICKWIRE_INGESTOR_TWELVEDATA_API_KEY", "twelvedata-api-key"),
                          ("TICKWIRE_INGESTOR_ALPHAVANTAGE_API_KEY", "alphavantage-api-key")):
        ref = ingestor[variable]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": key, "optional": True}
    for component in ("ws-edge", "registry"):
        names = _env(_container(rendered.one("Deployment", component)))
        assert not [n for n in names if "API_KEY" in n], f"{component} must not see provider keys"
    configmap = rendered.of_kind("ConfigMap")[0]
    assert not [k for k in configmap["data"] if "KEY" in k or "SECRET" in k]


def test_cluster_values_point_at_a_redis_cluster_and_a_multi_broker_kafka(rendered_by_name):
    cluster = rendered_by_name["cluster"]
    assert not [o for o in cluster.objects if o["kind"] == "StatefulSet"]  # no in-release engines
    config = cluster.of_kind("ConfigMap")[0]["data"]
    assert config["TICKWIRE_REDIS_MODE"] == "cluster"
    assert len(config["TICKWIRE_KAFKA_BOOTSTRAP_SERVERS"].split(",")) == 3
    assert (config["TICKWIRE_KAFKA_REPLICATION_FACTOR"], config["TICKWIRE_KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    # Every service reads the ConfigMap, so each one runs in cluster mode.
    for component in COMPONENTS:
        container = _container(cluster.one("Deployment", component))
        sources = [s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s]
        assert cluster.of_kind("ConfigMap")[0]["metadata"]["name"] in sources, component
    assert rendered_by_name["default"].of_kind("ConfigMap")[0]["data"]["TICKWIRE_REDIS_MODE"] == "standalone"


def test_production_points_at_external_redis_and_kafka(rendered_by_name):
    production = rendered_by_name["production"]
    components = {o["metadata"]["labels"].get("app.kubernetes.io/component") for o in production.objects}
    assert not components & {"redis", "kafka"}, "production values must not run Redis or Kafka"
    assert not production.of_kind("Secret"), "production uses secrets.existingSecret"
    config = production.of_kind("ConfigMap")[0]["data"]
    assert config["TICKWIRE_KAFKA_BOOTSTRAP_SERVERS"].count(":9092") == 3
    assert "TICKWIRE_REDIS_URL" not in config
    assert config["TICKWIRE_KAFKA_REPLICATION_FACTOR"] == "3"
    for component in COMPONENTS:
        env = _env(_container(production.one("Deployment", component)))
        assert env["TICKWIRE_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "tickwire-secrets", "key": "redis-url"}
    assert production.of_kind("ServiceMonitor")

    default = rendered_by_name["default"].of_kind("ConfigMap")[0]["data"]
    assert default["TICKWIRE_REDIS_URL"] == "redis://tickwire-redis:6379/0"
    assert default["TICKWIRE_KAFKA_BOOTSTRAP_SERVERS"] == "tickwire-kafka:9092"


def test_in_release_kafka_is_a_single_kraft_node(rendered_by_name):
    kafka = rendered_by_name["default"].one("StatefulSet", "kafka")
    env = {e["name"]: e.get("value") for e in _container(kafka)["env"]}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://tickwire-kafka.tickwire.svc:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    persistent = rendered_by_name["all-features"].one("StatefulSet", "kafka")
    assert persistent["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_network_policies_admit_only_the_expected_peers(rendered_by_name):
    default = rendered_by_name["default"]
    edge = default.one("NetworkPolicy", "ws-edge")["spec"]
    peers = edge["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}} in peers
    assert edge["policyTypes"] == ["Ingress"]
    for component in ("redis", "kafka"):
        policy = default.one("NetworkPolicy", component)["spec"]
        allowed = policy["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
        assert sorted(allowed) == ["ingestor", "registry", "ws-edge"]

    restricted = rendered_by_name["all-features"]
    ingestor = restricted.one("NetworkPolicy", "ingestor")["spec"]
    assert "Egress" in ingestor["policyTypes"]
    ports = [p["port"] for rule in ingestor["egress"] for p in rule.get("ports", [])]
    assert {53, 6379, 9092, 443, 4318} <= set(ports)
    edge_ports = [p["port"] for rule in restricted.one("NetworkPolicy", "ws-edge")["spec"]["egress"]
                  for p in rule.get("ports", [])]
    assert 443 not in edge_ports, "only the ingestor talks to the quote providers"


def test_service_monitor_labels_targets_like_compose(rendered_by_name):
    monitor = rendered_by_name["all-features"].of_kind("ServiceMonitor")[0]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "targetLabel": "tickwire_service"} in endpoint["relabelings"]
    selected = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    assert sorted(selected) == sorted(COMPONENTS)


def test_prometheus_rule_ships_the_compose_rules(rendered_by_name, promtool, tmp_path):
    """The same groups and rules as deploy/compose/alerts.yml; only the memory rule reads each
    pod's limit from kube-state-metrics instead of compose's 512 MiB. promtool accepts them."""
    rule = rendered_by_name["all-features"].of_kind("PrometheusRule")
    assert len(rule) == 1
    assert rule[0]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    groups = rule[0]["spec"]["groups"]
    compose = load_yaml(REPO / "deploy" / "compose" / "alerts.yml")["groups"]
    memory = {"TickwireMemoryHigh"}

    def without_memory(gs):
        return [{**g, "rules": [r for r in g["rules"] if r.get("alert") not in memory]} for g in gs]

    assert without_memory(groups) == without_memory(compose)
    ours = next(r for g in groups for r in g["rules"] if r["alert"] in memory)
    theirs = next(r for g in compose for r in g["rules"] if r["alert"] in memory)
    assert "kube_pod_container_resource_limits" in ours["expr"] and "> 0.8" in ours["expr"]
    assert {k: v for k, v in ours.items() if k not in ("expr", "annotations")} == \
        {k: v for k, v in theirs.items() if k not in ("expr", "annotations")}
    assert ours["annotations"]["summary"] == theirs["annotations"]["summary"]

    rendered = tmp_path / "rules.yml"
    rendered.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run([promtool, "check", "rules", str(rendered)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overrides, message", [
    (["--set", "edge.terminationGracePeriodSeconds=20"], "must exceed edge.preStopSleepSeconds"),
    (["--set", "redis.enabled=false"], "redis.url is required"),
    (["--set", "kafka.enabled=false"], "kafka.bootstrapServers is required"),
    (["--set", "ingress.timeoutSeconds=60"], "/ingress/timeoutSeconds"),
    (["--set", "edge.replica=3"], "additional properties 'replica' not allowed"),
    (["--set", "kafka.bootstrapServers=kafka"], "/kafka/bootstrapServers"),
    (["--set", "redis.mode=cluster"], "redis.mode=cluster needs an external Redis Cluster"),
    (["--set", "redis.mode=sentinel"], "/redis/mode"),
])
def test_a_broken_configuration_does_not_render(helm, overrides, message):
    result = run_helm(helm, "template", "tickwire", str(CHART), "--kube-version", "1.30.0", *overrides)
    assert result.returncode != 0, f"{overrides} rendered"
    assert message in result.stderr
