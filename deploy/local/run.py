"""`make run`: Redis, Kafka, registry, ingestor, two edges and HAProxy on loopback, in
the foreground. Ctrl-C or SIGTERM stops everything it started, newest first.

Environment variables given to `make run` reach every service (TICKWIRE_*, OTEL_*).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from tickwire.localstack import (ServiceLauncher, StartError, start_haproxy, start_kafka,
                                 start_redis)

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".run"
PIDS = RUN_DIR / "pids"

REDIS_PORT, KAFKA_PORT, CONTROLLER_PORT = 6379, 9092, 9093
REGISTRY_PORT, INGESTOR_PORT, LB_PORT = 8082, 8083, 8080
EDGES = [("edge-1", 8081), ("edge-2", 8091)]


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    started = []
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def track(process):
        started.append(process)
        with PIDS.open("a") as pids:
            pids.write(f"{process.pid} {process.name}\n")
        return process

    PIDS.write_text("")
    try:
        print("starting redis, kafka ...", flush=True)
        track(start_redis(REDIS_PORT, RUN_DIR / "redis"))
        track(start_kafka(KAFKA_PORT, CONTROLLER_PORT, RUN_DIR / "kafka"))
        launcher = ServiceLauncher(f"redis://127.0.0.1:{REDIS_PORT}/0",
                                   f"127.0.0.1:{KAFKA_PORT}", RUN_DIR / "logs",
                                   env={
                                       "TICKWIRE_LOG_FORMAT": os.environ.get("TICKWIRE_LOG_FORMAT", "text"),
                                       # HAProxy adds X-Forwarded-For: per-client limits see clients.
                                       "TICKWIRE_EDGE_TRUSTED_PROXIES": os.environ.get(
                                           "TICKWIRE_EDGE_TRUSTED_PROXIES", "127.0.0.1"),
                                   })
        print("starting registry, ingestor, edges ...", flush=True)
        track(launcher.registry(REGISTRY_PORT))
        track(launcher.ingestor(INGESTOR_PORT))
        for edge_id, port in EDGES:
            track(launcher.edge(port, edge_id))
        track(start_haproxy(LB_PORT, EDGES, RUN_DIR / "haproxy"))
    except (StartError, OSError) as exc:
        print(f"make run: {exc}", file=sys.stderr)
        stop.set()
    else:
        print(f"""
tickwire is running (logs in {RUN_DIR}/logs):
  dashboard        http://127.0.0.1:{LB_PORT}/
  websocket        ws://127.0.0.1:{LB_PORT}/ws
  quotes (REST)    http://127.0.0.1:{LB_PORT}/api/quotes/AAPL
  edges            http://127.0.0.1:{EDGES[0][1]}/  http://127.0.0.1:{EDGES[1][1]}/
  registry         http://127.0.0.1:{REGISTRY_PORT}/api/symbols
  ingestor         http://127.0.0.1:{INGESTOR_PORT}/api/providers
  redis / kafka    127.0.0.1:{REDIS_PORT} / 127.0.0.1:{KAFKA_PORT}
Ctrl-C stops everything.""", flush=True)
        while not stop.wait(1):
            dead = [p for p in started if not p.alive()]
            if dead:
                print(f"make run: {dead[0].name} exited:\n{dead[0].log_tail()}", file=sys.stderr)
                break
    print("stopping ...", flush=True)
    for process in reversed(started):
        process.stop()
    PIDS.unlink(missing_ok=True)
    return 0 if stop.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
