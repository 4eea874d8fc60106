"""`make run-cluster`: the `make run` stack on the distributed engines, in the foreground:
a 6-node Redis Cluster (3 primaries + 3 replicas, ports 7001-7006), a 3-broker KRaft Kafka
(brokers 9092/9094/9096, controllers 9093/9095/9097), registry, ingestor, three edges and
HAProxy on 8080. Ctrl-C or SIGTERM stops everything it started, newest first; `make down`
stops what a crashed run left behind.

Environment variables given to `make run-cluster` reach every service (TICKWIRE_*, OTEL_*).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from tickwire.localstack import ServiceLauncher, StartError, start_haproxy
from tickwire.localstack.cluster import (KAFKA_BROKER_PORTS, KAFKA_CONTROLLER_PORTS,
                                         REDIS_CLUSTER_PORTS, start_kafka_cluster,
                                         start_redis_cluster)

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".run"
PIDS = RUN_DIR / "pids"  # shared with `make run`, so `make down` stops either

REGISTRY_PORT, INGESTOR_PORT, LB_PORT = 8082, 8083, 8080
EDGES = [("edge-1", 8081), ("edge-2", 8091), ("edge-3", 8101)]


def main() -> int:
    RUN_DIR.mkdir(exist_ok=True)
    started = []
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def track(*processes):
        started.extend(processes)
        with PIDS.open("a") as pids:
            pids.writelines(f"{p.pid} {p.name}\n" for p in processes)

    PIDS.write_text("")
    try:
        print("starting a redis cluster (6 nodes), kafka (3 brokers) ...", flush=True)
        redis = start_redis_cluster(REDIS_CLUSTER_PORTS, RUN_DIR / "redis-cluster")
        track(*redis.nodes.values())
        kafka = start_kafka_cluster(KAFKA_BROKER_PORTS, KAFKA_CONTROLLER_PORTS,
                                    RUN_DIR / "kafka-cluster")
        track(*kafka.brokers.values())
        launcher = ServiceLauncher(redis.url, kafka.bootstrap, RUN_DIR / "logs", env={
            "TICKWIRE_REDIS_MODE": "cluster",
            "TICKWIRE_KAFKA_REPLICATION_FACTOR": "3",
            "TICKWIRE_KAFKA_MIN_INSYNC_REPLICAS": "2",
            "TICKWIRE_LOG_FORMAT": os.environ.get("TICKWIRE_LOG_FORMAT", "text"),
            # HAProxy adds X-Forwarded-For: per-client limits see clients.
            "TICKWIRE_EDGE_TRUSTED_PROXIES": os.environ.get("TICKWIRE_EDGE_TRUSTED_PROXIES",
                                                            "127.0.0.1"),
        })
        print("starting registry, ingestor, edges ...", flush=True)
        track(launcher.registry(REGISTRY_PORT))
        track(launcher.ingestor(INGESTOR_PORT))
        for edge_id, port in EDGES:
            track(launcher.edge(port, edge_id))
        track(start_haproxy(LB_PORT, EDGES, RUN_DIR / "haproxy"))
    except (StartError, OSError) as exc:
        print(f"make run-cluster: {exc}", file=sys.stderr)
        stop.set()
    else:
        edges = "  ".join(f"http://127.0.0.1:{port}/" for _, port in EDGES)
        print(f"""
tickwire is running on a Redis Cluster and a 3-broker Kafka (logs in {RUN_DIR}/logs):
  dashboard        http://127.0.0.1:{LB_PORT}/
  websocket        ws://127.0.0.1:{LB_PORT}/ws
  quotes (REST)    http://127.0.0.1:{LB_PORT}/api/quotes/AAPL
  edges            {edges}
  registry         http://127.0.0.1:{REGISTRY_PORT}/api/symbols
  ingestor         http://127.0.0.1:{INGESTOR_PORT}/api/providers
  redis cluster    127.0.0.1:{REDIS_CLUSTER_PORTS[0]}-{REDIS_CLUSTER_PORTS[-1]}
  kafka            {kafka.bootstrap}
Ctrl-C stops everything.""", flush=True)
        # Engine nodes may die (that is what a cluster is for); a tickwire service may not.
        services = started[len(redis.nodes) + len(kafka.brokers):]
        while not stop.wait(1):
            dead = [p for p in services if not p.alive()]
            if dead:
                print(f"make run-cluster: {dead[0].name} exited:\n{dead[0].log_tail()}",
                      file=sys.stderr)
                break
    print("stopping ...", flush=True)
    for process in reversed(started):
        process.stop()
    PIDS.unlink(missing_ok=True)
    return 0 if stop.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
