"""The `make run` stack: Redis, Kafka, registry, ingestor, the edges and HAProxy (plain and
TLS), started in dependency order, each ready before the next, and handed to a Supervisor."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tickwire.localstack.infra import start_haproxy, start_kafka, start_redis
from tickwire.localstack.ports import free_port
from tickwire.localstack.services import ServiceLauncher
from tickwire.localstack.supervisor import Supervisor
from tickwire.localstack.tls import TlsFiles


@dataclass(frozen=True)
class StackPorts:
    """Defaults are DESIGN.md's ports; `free()` picks unused ones (tests)."""

    redis: int = 6379
    kafka: int = 9092
    controller: int = 9093
    registry: int = 8082
    ingestor: int = 8083
    lb: int = 8080
    tls: int = 8443
    edges: tuple[tuple[str, int], ...] = field(default=(("edge-1", 8081), ("edge-2", 8091)))

    @classmethod
    def free(cls) -> StackPorts:
        return cls(redis=free_port(), kafka=free_port(), controller=free_port(),
                   registry=free_port(), ingestor=free_port(), lb=free_port(), tls=free_port(),
                   edges=(("edge-1", free_port()), ("edge-2", free_port())))


def start_stack(supervisor: Supervisor, ports: StackPorts, run_dir: Path, tls: TlsFiles,
                env: dict[str, str] | None = None,
                say: Callable[[str], None] = print) -> None:
    """Start every process and hand each to `supervisor`; raises StartError (what was
    started so far stays with the supervisor, to be stopped by it)."""
    say("starting redis, kafka ...")
    supervisor.adopt(start_redis(ports.redis, run_dir / "redis"))
    supervisor.adopt(start_kafka(ports.kafka, ports.controller, run_dir / "kafka"))
    launcher = ServiceLauncher(f"redis://127.0.0.1:{ports.redis}/0", f"127.0.0.1:{ports.kafka}",
                               run_dir / "logs", env={
                                   "TICKWIRE_LOG_FORMAT": os.environ.get("TICKWIRE_LOG_FORMAT", "text"),
                                   # HAProxy adds X-Forwarded-For: per-client limits see clients.
                                   "TICKWIRE_EDGE_TRUSTED_PROXIES": os.environ.get(
                                       "TICKWIRE_EDGE_TRUSTED_PROXIES", "127.0.0.1"),
                                   **(env or {}),
                               })
    say("starting registry, ingestor, edges ...")
    supervisor.adopt(launcher.registry(ports.registry))
    supervisor.adopt(launcher.ingestor(ports.ingestor))
    for edge_id, port in ports.edges:
        supervisor.adopt(launcher.edge(port, edge_id))
    supervisor.adopt(start_haproxy(ports.lb, list(ports.edges), run_dir / "haproxy",
                                   tls=(ports.tls, tls.server_pem)))
