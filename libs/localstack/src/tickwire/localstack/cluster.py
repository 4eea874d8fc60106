"""The distributed topology on loopback: a Redis Cluster and a three-broker KRaft Kafka.

`make run-cluster` starts them on the fixed ports below; test fixtures pass free ports.
Each returns once the whole topology serves: every Redis node reports `cluster_state:ok`
with all 16384 slots covered, every broker has logged that it started.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis as sync_redis

from tickwire.localstack.infra import kafka_cluster_id, kafka_java, render, require
from tickwire.localstack.process import ManagedProcess, StartError, port_open

REDIS_CLUSTER_PORTS = [7001, 7002, 7003, 7004, 7005, 7006]  # 3 primaries, then 3 replicas
KAFKA_BROKER_PORTS = [9092, 9094, 9096]
KAFKA_CONTROLLER_PORTS = [9093, 9095, 9097]


def _wait(ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise StartError(f"{what} not reached after {timeout:.0f}s")
        time.sleep(0.2)


@dataclass
class LocalRedisCluster:
    """Nodes by port; `ports[:3]` were created as primaries (a failover may swap roles)."""

    ports: list[int]
    workdir: Path
    nodes: dict[int, ManagedProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> ManagedProcess:
        """Start (or restart, keeping its nodes.conf) the node on `port`."""
        workdir = self.workdir / str(port)
        conf = render("redis-cluster.conf.in", workdir / "redis.conf", port=port, dir=workdir)
        process = ManagedProcess(f"redis-{port}", [require("redis-server", "redis-server"),
                                                   str(conf)], workdir / "redis.log").start()
        self.nodes[port] = process
        process.wait_until(lambda: port_open(port), 20, f"listening on {port}")
        return process

    def info(self, port: int) -> dict[str, str]:
        with sync_redis.Redis(port=port, socket_timeout=2, decode_responses=True) as client:
            return client.execute_command("CLUSTER INFO")

    def healthy(self, ports: list[int] | None = None) -> bool:
        """Every given (default: running) node sees all slots served."""
        for port in ports or [p for p, n in self.nodes.items() if n.alive()]:
            try:
                info = self.info(port)
            except (sync_redis.RedisError, OSError):
                return False
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                return False
        return True

    def replicas(self) -> int:
        """How many replicas are attached to a primary and in sync with it."""
        attached = 0
        for port, process in self.nodes.items():
            if not process.alive():
                continue
            try:
                with sync_redis.Redis(port=port, socket_timeout=2, decode_responses=True) as client:
                    replication = client.info("replication")
            except (sync_redis.RedisError, OSError):
                continue
            attached += replication.get("role") == "slave" and replication.get("master_link_status") == "up"
        return attached

    def primary_of(self, key: str) -> int:
        """The port of the primary serving `key`'s slot now."""
        with sync_redis.Redis(port=self._live_port(), socket_timeout=2) as client:
            slot = client.execute_command("CLUSTER KEYSLOT", key)
            for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
        raise StartError(f"no primary serves the slot of {key!r}")

    def primaries(self) -> list[int]:
        """Ports of the primaries serving slots now."""
        with sync_redis.Redis(port=self._live_port(), socket_timeout=2) as client:
            return sorted({int(primary[1]) for _, _, primary, *_ in
                           client.execute_command("CLUSTER SLOTS")})

    def migrate_slots(self, slots: range, target: int) -> None:
        """Move `slots` (each served by one primary) and their keys to primary `target`,
        one slot at a time, as `redis-cli --cluster reshard` does."""
        nodes = {port: sync_redis.Redis(port=port, socket_timeout=10) for port in self.primaries()}
        try:
            ids = {port: client.execute_command("CLUSTER MYID").decode()
                   for port, client in nodes.items()}
            for slot in slots:
                source = self._owner(nodes[target], slot)
                if source == target:
                    continue
                nodes[target].execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
                nodes[source].execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])
                while keys := nodes[source].execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
                    nodes[source].execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000,
                                                  "KEYS", *keys)
                for client in (nodes[target], nodes[source], *nodes.values()):
                    client.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target])
        finally:
            for client in nodes.values():
                client.close()

    @staticmethod
    def _owner(client: sync_redis.Redis, slot: int) -> int:
        for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise StartError(f"slot {slot} is not served")

    def _live_port(self) -> int:
        return next(p for p in self.ports if self.nodes.get(p) and self.nodes[p].alive())

    def stop(self) -> None:
        for process in self.nodes.values():
            process.stop()


def start_redis_cluster(ports: list[int], workdir: Path, timeout: float = 60) -> LocalRedisCluster:
    """A fresh cluster of len(ports) nodes, one replica per primary."""
    shutil.rmtree(workdir, ignore_errors=True)
    cluster = LocalRedisCluster(list(ports), workdir)
    try:
        for port in ports:
            cluster.start_node(port)
        subprocess.run([require("redis-cli", "redis-tools"), "--cluster", "create",
                        *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, capture_output=True, timeout=timeout)
        _wait(lambda: cluster.healthy(ports) and cluster.replicas() == len(ports) // 2, timeout,
              "cluster_state:ok and every replica attached")
    except BaseException:
        cluster.stop()
        raise
    return cluster


@dataclass
class LocalKafkaCluster:
    """Brokers by node id (1, 2, 3)."""

    broker_ports: list[int]
    controller_ports: list[int]
    workdir: Path
    brokers: dict[int, ManagedProcess] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.broker_ports)

    def _props(self, node_id: int) -> Path:
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(self.controller_ports, 1))
        workdir = self.workdir / f"broker-{node_id}"
        return render("kafka-cluster.properties.in", workdir / "server.properties",
                      node_id=node_id, voters=voters, port=self.broker_ports[node_id - 1],
                      controller_port=self.controller_ports[node_id - 1],
                      log_dirs=workdir / "data")

    def start_broker(self, node_id: int) -> ManagedProcess:
        """Start (or restart, on its data) broker `node_id`; does not wait."""
        workdir = self.workdir / f"broker-{node_id}"
        process = ManagedProcess(f"kafka-{node_id}",
                                 [*kafka_java(workdir, "384m"), "kafka.Kafka",
                                  str(self._props(node_id))], workdir / "kafka.log")
        self.brokers[node_id] = process.start()
        return process

    def started(self, node_id: int) -> bool:
        process = self.brokers[node_id]
        return (process.alive() and port_open(self.broker_ports[node_id - 1])
                and "Kafka Server started" in process.log_path.read_text(errors="replace"))

    def stop(self) -> None:
        for process in self.brokers.values():
            process.stop()


def start_kafka_cluster(broker_ports: list[int], controller_ports: list[int], workdir: Path,
                        timeout: float = 150) -> LocalKafkaCluster:
    """Three fresh combined KRaft nodes with a static quorum, started together (the quorum
    needs two of them)."""
    shutil.rmtree(workdir, ignore_errors=True)
    cluster = LocalKafkaCluster(list(broker_ports), list(controller_ports), workdir)
    cluster_id = kafka_cluster_id()
    node_ids = range(1, len(broker_ports) + 1)
    formats = [subprocess.Popen([*kafka_java(workdir), "kafka.tools.StorageTool", "format",
                                 "-t", cluster_id, "-c", str(cluster._props(n))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for n in node_ids]
    for n, formatting in zip(node_ids, formats):
        if formatting.wait(timeout) != 0:
            raise StartError(f"formatting broker {n} failed: {formatting.stderr.read()[-500:]!r}")
    try:
        for n in node_ids:
            cluster.start_broker(n)
        for n in node_ids:
            cluster.brokers[n].wait_until(lambda n=n: cluster.started(n), timeout,
                                          f"started on {broker_ports[n - 1]}")
    except BaseException:
        cluster.stop()
        raise
    return cluster
