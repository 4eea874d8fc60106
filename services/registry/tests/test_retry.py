"""Waiting for a dependency: retried while it is unavailable, reported meanwhile."""

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tickwire.registry.health import Health
from tickwire.registry.retry import until_done


class Flaky:
    def __init__(self, failures: list[BaseException]):
        self.failures = failures
        self.calls = 0

    async def __call__(self, value: str) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return value


async def test_retries_until_the_dependency_answers_and_reports_it_meanwhile():
    health = Health()
    seen_down = []
    flaky = Flaky([RedisConnectionError("down"), RedisConnectionError("still down")])

    async def call(value: str) -> str:
        seen_down.append(health.reason() == "redis unavailable")
        return await flaky(value)

    assert await until_done("redis", "apply", health, call, "done") == "done"
    assert flaky.calls == 3
    assert seen_down == [True, True, True]     # never up before the first success
    assert health.reason() != "redis unavailable"


async def test_other_errors_are_not_retried():
    flaky = Flaky([ValueError("a bug")])
    with pytest.raises(ValueError):
        await until_done("redis", "apply", Health(), flaky, "x")
    assert flaky.calls == 1
