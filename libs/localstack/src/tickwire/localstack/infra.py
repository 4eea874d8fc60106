"""Start Redis, Kafka (KRaft, from Maven Central jars) and HAProxy on loopback.

Configs are the templates in `deploy/local/`; the Kafka jars are fetched once with Maven
into a cache outside the clone (TICKWIRE_CACHE_DIR, default ~/.cache/tickwire).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from string import Template

from tickwire.localstack.process import ManagedProcess, StartError, port_open

KAFKA_VERSION = "4.1.1"


def deploy_dir() -> Path:
    """`deploy/local` of the repository this package is installed from (editable)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "deploy" / "local"
        if (candidate / "kafka-pom.xml").exists():
            return candidate
    raise StartError("cannot find deploy/local/ above " + __file__)


def cache_dir() -> Path:
    return Path(os.environ.get("TICKWIRE_CACHE_DIR", Path.home() / ".cache" / "tickwire"))


def render(template: str, target: Path, **values) -> Path:
    text = Template((deploy_dir() / template).read_text()).substitute(**values)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def require(binary: str, package: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if path is None:
        raise StartError(f"{binary} not found: apt-get install {package}")
    return path


def start_redis(port: int, workdir: Path) -> ManagedProcess:
    conf = render("redis.conf.in", workdir / "redis.conf", port=port, dir=workdir)
    process = ManagedProcess("redis", [require("redis-server", "redis-server"), str(conf)],
                             workdir / "redis.log").start()
    process.wait_until(lambda: port_open(port), 20, f"listening on {port}")
    return process


def ensure_kafka_jars() -> Path:
    """The folder of Kafka's runtime jars, downloaded with Maven on first use."""
    libs = cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    libs.mkdir(parents=True, exist_ok=True)
    print(f"fetching Kafka {KAFKA_VERSION} jars into {libs} (once) ...", file=sys.stderr)
    subprocess.run(
        [require("mvn", "maven"), "-B", "-q", "-f", str(deploy_dir() / "kafka-pom.xml"),
         "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
         f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        check=True,
    )
    marker.touch()
    return libs


def kafka_java(workdir: Path, heap: str = "512m") -> list[str]:
    """`java <options> -cp <Kafka jars>`: add a main class and its arguments."""
    java = require("java", "openjdk-17-jre-headless")
    return [java, "-Xms256m", f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={deploy_dir() / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={workdir / 'logs'}", "-cp", f"{ensure_kafka_jars()}/*"]


def kafka_cluster_id() -> str:
    return subprocess.run([*kafka_java(cache_dir()), "kafka.tools.StorageTool", "random-uuid"],
                          check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]


def start_kafka(port: int, controller_port: int, workdir: Path, timeout: float = 90) -> ManagedProcess:
    """A fresh single-node KRaft cluster in `workdir`; returns once the broker is started.
    Started again (ManagedProcess.start), it keeps that cluster's data."""
    data = workdir / "data"
    shutil.rmtree(data, ignore_errors=True)
    props = render("kafka.properties.in", workdir / "server.properties", port=port,
                    controller_port=controller_port, log_dirs=data)
    java = kafka_java(workdir)
    subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(),
                    "-c", str(props), "--standalone", "-g"], check=True, capture_output=True)
    process = ManagedProcess("kafka", [*java, "kafka.Kafka", str(props)],
                             workdir / "kafka.log").start()
    process.wait_until(
        lambda: "Kafka Server started" in process.log_path.read_text(errors="replace")
        and port_open(port),
        timeout, f"started on {port}")
    return process


def render_haproxy(port: int, edges: list[tuple[str, int]], target: Path,
                   tls: tuple[int, Path] | None = None) -> Path:
    """The config `make run` uses; `tls` = (port, PEM of certificate + key) adds a TLS bind."""
    servers = "\n".join(
        f"    server {name} 127.0.0.1:{edge_port} check cookie {name}" for name, edge_port in edges)
    tls_bind = f"    bind 127.0.0.1:{tls[0]} ssl crt {tls[1]} alpn http/1.1\n" if tls else ""
    return render("haproxy.cfg.in", target, port=port, servers=servers, tls_bind=tls_bind)


def start_haproxy(port: int, edges: list[tuple[str, int]], workdir: Path,
                  tls: tuple[int, Path] | None = None) -> ManagedProcess:
    haproxy = require("haproxy", "haproxy")
    cfg = render_haproxy(port, edges, workdir / "haproxy.cfg", tls)
    subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], check=True)
    process = ManagedProcess("haproxy", [haproxy, "-db", "-f", str(cfg)],
                             workdir / "haproxy.log").start()
    process.wait_until(lambda: port_open(port) and (tls is None or port_open(tls[0])), 20,
                       f"listening on {port}")
    return process
