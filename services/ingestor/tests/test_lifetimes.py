"""KeyLifetimes keeps the newest change per symbol and loses none when Redis fails."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tickwire.core import names
from tickwire.ingestor.lifetimes import KeyLifetimes, symbol_keys


class RecordingPipeline:
    def __init__(self, redis: FakeRedis):
        self._redis = redis
        self._commands: list[tuple] = []

    async def __aenter__(self) -> RecordingPipeline:
        return self

    async def __aexit__(self, *_) -> None:
        return None

    def persist(self, key: str) -> None:
        self._commands.append(("PERSIST", key))

    def expire(self, key: str, seconds: int) -> None:
        self._commands.append(("EXPIRE", key, seconds))

    async def execute(self) -> list:
        if self._redis.failing:
            raise RedisConnectionError("down")
        self._redis.commands += self._commands
        return [1] * len(self._commands)


class FakeRedis:
    def __init__(self) -> None:
        self.failing = False
        self.commands: list[tuple] = []

    def pipeline(self, transaction: bool) -> RecordingPipeline:
        assert not transaction
        return RecordingPipeline(self)


async def test_inactive_symbols_get_the_ttl_and_active_ones_lose_it():
    redis = FakeRedis()
    lifetimes = KeyLifetimes(redis, 300)
    lifetimes.changed("GONE", False)
    lifetimes.changed("BACK", False)
    lifetimes.changed("BACK", True)  # came back before the write: only the newest counts
    assert await lifetimes.write() == 2
    assert [c for c in redis.commands if c[1] in symbol_keys("GONE")] == \
        [("EXPIRE", key, 300) for key in symbol_keys("GONE")]
    assert [c for c in redis.commands if c[1] in symbol_keys("BACK")] == \
        [("PERSIST", key) for key in symbol_keys("BACK")]
    assert names.quote_key("GONE") in symbol_keys("GONE")
    assert await lifetimes.write() == 0


async def test_changes_survive_a_failed_write_and_newer_ones_win():
    redis = FakeRedis()
    lifetimes = KeyLifetimes(redis, 60)
    lifetimes.changed("A", False)
    lifetimes.changed("B", False)
    redis.failing = True
    with pytest.raises(RedisConnectionError):
        await lifetimes.write()
    lifetimes.changed("B", True)  # while Redis was down
    redis.failing = False
    assert await lifetimes.write() == 2
    assert ("EXPIRE", names.quote_key("A"), 60) in redis.commands
    assert ("PERSIST", names.quote_key("B")) in redis.commands
    assert ("EXPIRE", names.quote_key("B"), 60) not in redis.commands
