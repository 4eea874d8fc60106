"""Real Redis and real Kafka for integration tests, and the tickwire services as processes.

Where the servers come from, in order: the URL in TICKWIRE_REDIS_URL /
TICKWIRE_KAFKA_BOOTSTRAP_SERVERS; a Docker engine (testcontainers) when one answers;
otherwise local processes on free ports, started here and stopped by their own PID.
Every test starts from empty state: Redis is flushed and the tickwire topics are
recreated by the services it starts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from aiokafka.admin import AIOKafkaAdminClient

from tickwire.core import names
from tickwire.localstack import (ManagedProcess, ServiceLauncher, free_port, start_haproxy,
                                 start_kafka, start_redis)

from integration.stack import Stack


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _named(variable: str) -> str | None:
    """A server named by `variable`, which only one test process may use: every test
    starts by emptying it."""
    value = os.environ.get(variable)
    if value and int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        pytest.fail(f"{variable} names a server that parallel test processes would share: "
                    f"run with TEST_WORKERS=1 (pytest -n 0)")
    return value


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[str]:
    if url := _named("TICKWIRE_REDIS_URL"):
        yield url
    elif _docker_available():
        from testcontainers.community.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            yield (f"redis://{container.get_container_host_ip()}:"
                   f"{container.get_exposed_port(6379)}/0")
    else:
        port = free_port()
        process = start_redis(port, tmp_path_factory.mktemp("redis"))
        yield f"redis://127.0.0.1:{port}/0"
        process.stop()


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory) -> Iterator[str]:
    if bootstrap := _named("TICKWIRE_KAFKA_BOOTSTRAP_SERVERS"):
        yield bootstrap
    elif _docker_available():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        port = free_port()
        process = start_kafka(port, free_port(), tmp_path_factory.mktemp("kafka"))
        yield f"127.0.0.1:{port}"
        process.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    client = sync_redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


async def _delete_tickwire_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = {names.SUBSCRIPTIONS_TOPIC, names.ACTIVE_SYMBOLS_TOPIC}
        present = ours & set(await admin.list_topics())
        if present:
            await admin.delete_topics(list(present))
            for _ in range(100):
                if not ours & set(await admin.list_topics()):
                    break
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


@pytest.fixture
def kafka_bootstrap(kafka_server: str) -> str:
    asyncio.run(_delete_tickwire_topics(kafka_server))
    return kafka_server


@pytest.fixture
def stack(redis_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Stack]:
    """Starts services on demand; stops every one of them, newest first, at the end."""
    launcher = ServiceLauncher(redis_url, kafka_bootstrap, tmp_path / "logs",
                               env={"TICKWIRE_LOG_FORMAT": "text"})
    started: list[ManagedProcess] = []
    yield Stack(launcher, started, tmp_path, start_haproxy)
    for process in reversed(started):
        process.stop()


@pytest.fixture
async def injector(redis_url: str):
    from integration.ticks import Injector

    injector = Injector(redis_url)
    yield injector
    await injector.close()
