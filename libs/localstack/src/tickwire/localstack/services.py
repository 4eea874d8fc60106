"""Start the tickwire services as child processes, configured through their env vars."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tickwire.localstack.process import ManagedProcess, wait_http_ok


class ServiceLauncher:
    """Each start returns once the service answers 200 on /readyz."""

    def __init__(self, redis_url: str, kafka_bootstrap: str, workdir: Path,
                 env: dict[str, str] | None = None):
        self.workdir = workdir
        self.base_env = {
            **os.environ,
            "TICKWIRE_REDIS_URL": redis_url,
            "TICKWIRE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }

    def spawn(self, module: str, name: str, port: int, env: dict[str, str]) -> ManagedProcess:
        """Start without waiting (for tests of start-up failures)."""
        return ManagedProcess(name, [sys.executable, "-m", module],
                              self.workdir / f"{name}.log",
                              env={**self.base_env, **env}).start()

    def _start(self, module: str, name: str, port: int, env: dict[str, str],
               timeout: float) -> ManagedProcess:
        process = self.spawn(module, name, port, env)
        try:
            wait_http_ok(process, f"http://127.0.0.1:{port}/readyz", timeout)
        except Exception:
            process.stop()
            raise
        return process

    def registry(self, port: int, name: str = "registry", timeout: float = 60,
                 **env: str) -> ManagedProcess:
        return self._start("tickwire.registry", name, port,
                           {"TICKWIRE_REGISTRY_PORT": str(port), **env}, timeout)

    def ingestor(self, port: int, name: str = "ingestor", timeout: float = 60,
                 **env: str) -> ManagedProcess:
        return self._start("tickwire.ingestor", name, port,
                           {"TICKWIRE_INGESTOR_PORT": str(port), **env}, timeout)

    def edge(self, port: int, edge_id: str, timeout: float = 60, **env: str) -> ManagedProcess:
        return self._start("tickwire.edge", edge_id, port,
                           {"TICKWIRE_EDGE_PORT": str(port), "TICKWIRE_EDGE_ID": edge_id, **env},
                           timeout)
