"""tickwire.localstack: Redis, Kafka, HAProxy and the tickwire services as local
processes, for `make run` and the test fixtures (no Docker needed), and the supervisor that
keeps them running."""

from tickwire.localstack.infra import (KAFKA_VERSION, deploy_dir, ensure_kafka_jars,
                                       render_haproxy, start_haproxy, start_kafka, start_redis)
from tickwire.localstack.ports import free_port
from tickwire.localstack.process import ManagedProcess, StartError, wait_http_ok
from tickwire.localstack.services import ServiceLauncher
from tickwire.localstack.stack import StackPorts, start_stack
from tickwire.localstack.supervisor import Backoff, Supervisor
from tickwire.localstack.tls import TlsFiles, ensure_tls

__all__ = ["KAFKA_VERSION", "Backoff", "ManagedProcess", "ServiceLauncher", "StackPorts",
           "StartError", "Supervisor", "TlsFiles", "deploy_dir", "ensure_kafka_jars",
           "ensure_tls", "free_port", "render_haproxy", "start_haproxy", "start_kafka",
           "start_redis", "start_stack", "wait_http_ok"]
