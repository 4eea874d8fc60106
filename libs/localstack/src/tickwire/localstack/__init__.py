"""tickwire.localstack: Redis, Kafka, HAProxy and the tickwire services as local
processes, for `make run` and the test fixtures (no Docker needed)."""

from tickwire.localstack.infra import (KAFKA_VERSION, deploy_dir, ensure_kafka_jars, free_port,
                                       render_haproxy, start_haproxy, start_kafka, start_redis)
from tickwire.localstack.process import ManagedProcess, StartError, wait_http_ok
from tickwire.localstack.services import ServiceLauncher

__all__ = ["KAFKA_VERSION", "ManagedProcess", "ServiceLauncher", "StartError", "deploy_dir",
           "ensure_kafka_jars", "free_port", "render_haproxy", "start_haproxy", "start_kafka",
           "start_redis", "wait_http_ok"]
