"""Settings shared by every service; each service subclasses with its own env prefix.

Every field has an environment variable. A bad value stops the service at start with
one line naming the variable (`load_settings`).
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from typing import Literal, TypeVar
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound="ServiceSettings")


def generated_id() -> str:
    """A replica's or edge's id when none is set: unique per process, readable in logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def shared(env_name: str, default, **kwargs):
    """A field read from an un-prefixed TICKWIRE_* variable in every service."""
    return Field(default, validation_alias=AliasChoices(env_name), **kwargs)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    redis_url: str = shared("TICKWIRE_REDIS_URL", "redis://127.0.0.1:6379/0")
    redis_mode: Literal["standalone", "cluster"] = shared(
        "TICKWIRE_REDIS_MODE", "standalone",
        description="cluster: TICKWIRE_REDIS_URL names any node of a Redis Cluster")
    kafka_bootstrap_servers: str = shared("TICKWIRE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = shared("TICKWIRE_LOG_LEVEL", "INFO")
    log_format: Literal["json", "text"] = shared("TICKWIRE_LOG_FORMAT", "json")
    startup_timeout_seconds: float = shared("TICKWIRE_STARTUP_TIMEOUT_SECONDS", 30.0, gt=0)
    subscriptions_partitions: int = shared("TICKWIRE_SUBSCRIPTIONS_PARTITIONS", 6, ge=1)
    active_symbols_partitions: int = shared("TICKWIRE_ACTIVE_SYMBOLS_PARTITIONS", 6, ge=1)
    kafka_replication_factor: int = shared("TICKWIRE_KAFKA_REPLICATION_FACTOR", 1, ge=1)
    kafka_min_insync_replicas: int = shared(
        "TICKWIRE_KAFKA_MIN_INSYNC_REPLICAS", 1, ge=1,
        description="min.insync.replicas of the topics tickwire creates (at most the "
        "replication factor)")
    # Telemetry (see tickwire.core.telemetry; export itself follows the OTEL_* variables)
    trace_tick_ratio: float = shared("TICKWIRE_TRACE_TICK_RATIO", 0.01, ge=0, le=1,
                                     description="share of tick flows traced (root decision)")
    trace_subscription_ratio: float = shared("TICKWIRE_TRACE_SUBSCRIPTION_RATIO", 1.0, ge=0, le=1,
                                             description="share of subscription flows traced")
    latency_warning_seconds: float = shared("TICKWIRE_LATENCY_WARNING_SECONDS", 1.0, gt=0,
                                            description="a tick slower than this (ingest on "
                                            "the ingestor, publish to write on an edge) is "
                                            "logged as a warning, at most every 30 s")

    @model_validator(mode="after")
    def _min_insync(self):
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError("TICKWIRE_KAFKA_MIN_INSYNC_REPLICAS must not exceed "
                             "TICKWIRE_KAFKA_REPLICATION_FACTOR")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value):
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss", "unix") or not (parsed.hostname or parsed.path):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        try:
            parsed.port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return value


def env_name(cls: type[BaseSettings], field_name: str) -> str:
    """The environment variable that sets `field_name` of settings class `cls`."""
    field = cls.model_fields.get(field_name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return f"{cls.model_config.get('env_prefix', '')}{field_name}".upper()


def _field_of(cls: type[BaseSettings], loc_head: object) -> str:
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        if loc_head == name or loc_head in choices:
            return name
    return str(loc_head)


def load_settings(cls: type[S], program: str, **overrides) -> S:
    """Build settings from the environment; on a bad value print one line and exit(2)."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a check across fields names its variables in the message
            print(f"{program}: invalid setting {message}", file=sys.stderr)
            raise SystemExit(2) from None
        variable = env_name(cls, _field_of(cls, error["loc"][0]))
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, (str, int, float)) else ""
        print(f"{program}: invalid setting {variable}{shown}: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def fail_start(program: str, variable: str, value: str, reason: str) -> None:
    """Stop at start with one line naming the setting that points somewhere unusable."""
    print(f"{program}: cannot start: {variable}={value}: {reason}", file=sys.stderr)
    raise SystemExit(2)
