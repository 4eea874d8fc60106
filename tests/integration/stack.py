"""A handle on the tickwire processes one integration test runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tickwire.localstack import ManagedProcess, ServiceLauncher, free_port


@dataclass
class Service:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@dataclass
class Stack:
    launcher: ServiceLauncher
    started: list[ManagedProcess]
    workdir: Path
    _start_haproxy: Callable
    edges: list[Service] = field(default_factory=list)

    def _track(self, process: ManagedProcess, port: int) -> Service:
        self.started.append(process)
        return Service(process, port)

    def registry(self, name: str = "registry", **env: str) -> Service:
        port = free_port()
        env.setdefault("TICKWIRE_REGISTRY_LEASE_SECONDS", "6")
        return self._track(self.launcher.registry(port, name=name, **env), port)

    def ingestor(self, name: str = "ingestor", **env: str) -> Service:
        port = free_port()
        env.setdefault("TICKWIRE_INGESTOR_POLL_INTERVAL", "0.3")
        return self._track(self.launcher.ingestor(port, name=name, **env), port)

    def edge(self, edge_id: str, **env: str) -> Service:
        port = free_port()
        env.setdefault("TICKWIRE_EDGE_REGISTRY_HEARTBEAT_SECONDS", "1")
        service = self._track(self.launcher.edge(port, edge_id, **env), port)
        self.edges.append(service)
        return service

    def haproxy(self) -> Service:
        port = free_port()
        process = self._start_haproxy(
            port, [(e.process.name, e.port) for e in self.edges], self.workdir / "haproxy")
        return self._track(process, port)

    def full(self, edges: int = 2) -> Service:
        """registry, ingestor, `edges` edges and HAProxy in front of them; returns HAProxy."""
        self.registry()
        self.ingestor()
        for n in range(1, edges + 1):
            self.edge(f"edge-{n}")
        return self.haproxy()
