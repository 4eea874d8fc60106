"""Writes docs/settings.md from the settings classes themselves.

    uv run --frozen python docs/gen_settings.py > docs/settings.md

Every pydantic-settings class under the `tickwire` namespace is found by importing each
module whose name contains "settings" (services gain classes without touching this file);
the `tickwire` command's variables come from tickwire.client.cli.endpoints. A field's
meaning is its Field(description=…), else the line in MEANINGS below; tests/docs checks
that every field has one and that docs/settings.md is what this script prints.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import typing
from collections.abc import Iterator

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

import tickwire
from tickwire.core.settings import ServiceSettings, env_name

# Meanings of fields that carry no Field(description=…). Prefer a description in the class.
MEANINGS = {
    "TICKWIRE_REDIS_URL": "Redis for ticks, the quote cache and registry state "
                          "(redis://, rediss:// or unix://)",
    "TICKWIRE_KAFKA_BOOTSTRAP_SERVERS": "comma-separated host:port of the Kafka brokers",
    "TICKWIRE_LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR",
    "TICKWIRE_LOG_FORMAT": "`json` lines for machines, `text` for people",
    "TICKWIRE_STARTUP_TIMEOUT_SECONDS": "how long a service waits for Redis and Kafka at start "
                                        "before it gives up",
    "TICKWIRE_SUBSCRIPTIONS_PARTITIONS": "partitions of market-data.subscriptions when the "
                                         "topic is created",
    "TICKWIRE_ACTIVE_SYMBOLS_PARTITIONS": "partitions of market-data.active-symbols when the "
                                          "topic is created",
    "TICKWIRE_KAFKA_REPLICATION_FACTOR": "replication factor of the topics tickwire creates",
    "TICKWIRE_EDGE_HOST": "address the edge listens on",
    "TICKWIRE_EDGE_PORT": "port of /ws, the REST fallback, the dashboard and the probes",
    "TICKWIRE_EDGE_ID": "this edge's id in events, logs and X-Tickwire-Edge; empty: derived "
                        "from the host name",
    "TICKWIRE_EDGE_MAX_FRAME_BYTES": "largest client frame accepted; bigger closes with 1009",
    "TICKWIRE_EDGE_MESSAGES_PER_SECOND": "sustained client messages per second per connection",
    "TICKWIRE_EDGE_MESSAGE_BURST": "client messages a connection may send at once above the rate",
    "TICKWIRE_EDGE_MAX_CONNECTIONS_PER_IP": "open WebSockets one client address may hold",
    "TICKWIRE_EDGE_CONNECTIONS_PER_SECOND_PER_IP": "new WebSockets per second per client address",
    "TICKWIRE_EDGE_CONNECTION_BURST_PER_IP": "new WebSockets a client address may open at once",
    "TICKWIRE_EDGE_COMPRESSION": "accept permessage-deflate when a client offers it",
    "TICKWIRE_EDGE_JWT_SECRET": "HS256 secret (at least 32 bytes); when set (or a public key), a token is required",
    "TICKWIRE_EDGE_JWT_AUDIENCE": "expected `aud` claim; empty: not checked",
    "TICKWIRE_REGISTRY_REPLICA_ID": "this replica's id in logs, traces and the leader lease; "
                                    "empty: derived from the host name",
    "TICKWIRE_REGISTRY_SWEEP_INTERVAL_SECONDS": "how often the leader looks for edges whose "
                                                "lease ran out",
    "TICKWIRE_REGISTRY_LEADER_TTL_SECONDS": "lease of the replica that announces activity and "
                                            "expires edges; another takes over this long "
                                            "after the leader dies",
    "TICKWIRE_REGISTRY_TOMBSTONE_SECONDS": "how long a removed edge is remembered, so its late "
                                           "or replayed events cannot bring it back",
    "TICKWIRE_REGISTRY_HOST": "address the registry listens on",
    "TICKWIRE_REGISTRY_PORT": "port of /api/symbols, /api/edges and the probes",
    "TICKWIRE_INGESTOR_HOST": "address the ingestor listens on",
    "TICKWIRE_INGESTOR_PORT": "port of /api/providers and the probes",
    "TICKWIRE_INGESTOR_REPLICA_ID": "this replica's id in logs and traces; empty: derived "
                                    "from the host name",
    "TICKWIRE_INGESTOR_ALPHAVANTAGE_API_KEY": "Alpha Vantage key; set, the provider is used",
    "TICKWIRE_INGESTOR_ALPHAVANTAGE_BASE_URL": "Alpha Vantage API root (tests point it at a "
                                               "local server)",
    "TICKWIRE_INGESTOR_TWELVEDATA_API_KEY": "Twelve Data key; set, the provider is used",
    "TICKWIRE_INGESTOR_TWELVEDATA_BASE_URL": "Twelve Data API root (tests point it at a "
                                             "local server)",
    "TICKWIRE_INGESTOR_SIMULATED_SEED": "seed of the simulated provider's random walk",
    "TICKWIRE_INGESTOR_REQUEST_TIMEOUT_SECONDS": "time limit of one provider request",
    "TICKWIRE_INGESTOR_RETRY_BACKOFF_MAX_SECONDS": "longest wait between tries of one request",
}

SERVICE_TITLES = {"EdgeSettings": "ws-edge (`tickwire-edge`)",
                  "RegistrySettings": "registry (`tickwire-registry`)",
                  "IngestorSettings": "ingestor (`tickwire-ingestor`)"}


def settings_classes() -> list[type[BaseSettings]]:
    """Every BaseSettings subclass defined under `tickwire`, shared settings first."""
    for info in pkgutil.walk_packages(tickwire.__path__, "tickwire.", onerror=lambda _: None):
        leaf = info.name.rsplit(".", 1)[-1]
        if "settings" in leaf and not info.name.endswith("settings_doc"):
            importlib.import_module(info.name)
    found: dict[str, type[BaseSettings]] = {}

    def visit(cls: type) -> None:
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("tickwire."):
                found.setdefault(f"{sub.__module__}.{sub.__qualname__}", sub)
            visit(sub)
    visit(BaseSettings)
    return sorted(found.values(),
                  key=lambda c: (c is not ServiceSettings, c.__module__, c.__qualname__))


def own_fields(cls: type[BaseSettings]) -> Iterator[tuple[str, FieldInfo]]:
    """Fields `cls` adds; the shared ones of ServiceSettings are listed once, under it."""
    for name, field in cls.model_fields.items():
        if cls is not ServiceSettings and issubclass(cls, ServiceSettings) \
                and name in ServiceSettings.model_fields:
            continue
        yield name, field


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(computed)"
    value = field.default
    if value is PydanticUndefined:
        return "(required)"
    if value == "" or value is None:
        return "–"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def kind_text(field: FieldInfo) -> str:
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(f"`{a}`" for a in typing.get_args(annotation))
    text = getattr(annotation, "__name__", str(annotation).replace("typing.", ""))
    bounds = []
    for item in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{sign} {getattr(item, attr)}")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def meaning(cls: type[BaseSettings], name: str, field: FieldInfo) -> str | None:
    return field.description or MEANINGS.get(env_name(cls, name))


def missing_meanings() -> list[str]:
    """Variables with neither a description nor a line in MEANINGS."""
    return [env_name(cls, name) for cls in settings_classes()
            for name, field in own_fields(cls) if not meaning(cls, name, field)]


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `uv run --frozen python docs/gen_settings.py > docs/settings.md`",
        "     from the settings classes; tests/docs/test_settings_doc.py fails when it drifts."
        " -->",
        "",
        "Every setting is an environment variable. A service reads the shared ones and its",
        "own prefix (`TICKWIRE_EDGE_*`, `TICKWIRE_REGISTRY_*`, `TICKWIRE_INGESTOR_*`); a bad",
        "value stops it at start with one line naming the variable. Durations are seconds",
        "unless the name says otherwise. The standard `OTEL_*` variables configure trace",
        "export.",
    ]
    for cls in settings_classes():
        if cls is ServiceSettings:
            title = "Shared by every service"
        else:
            title = SERVICE_TITLES.get(cls.__name__, f"`{cls.__module__}.{cls.__qualname__}`")
        lines += ["", f"## {title}", "", "| variable | default | type | meaning |",
                  "|---|---|---|---|"]
        for name, field in own_fields(cls):
            lines.append(f"| `{env_name(cls, name)}` | {cell(default_text(field))} | "
                         f"{cell(kind_text(field))} | {cell(meaning(cls, name, field) or '')} |")
    lines += cli_section()
    return "\n".join(lines) + "\n"


def cli_section() -> list[str]:
    from tickwire.client.cli.endpoints import ENVIRONMENT

    lines = ["", "## The `tickwire` command", "",
             "Read by `tickwire watch|quote|status`; the matching options (`--url`, "
             "`--registry-url`, `--ingestor-url`, `--edge`, `--ca-file`) win over them.", "",
             "| variable | default | meaning |", "|---|---|---|"]
    for name, (default, text) in ENVIRONMENT.items():
        lines.append(f"| `{name}` | {f'`{default}`' if default else '–'} | {cell(text)} |")
    return lines


if __name__ == "__main__":
    sys.stdout.write(render())
