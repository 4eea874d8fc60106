"""The registry's settings: every field from a `TICKWIRE_REGISTRY_*` variable (plus the
shared `TICKWIRE_*` ones), built once in `__main__`; tests build it from keywords."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tickwire.core import names
from tickwire.core.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TICKWIRE_REGISTRY_", populate_by_name=True,
                                      extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8082, ge=1, le=65535)
    replica_id: str = ""
    group_id: str = Field(names.REGISTRY_GROUP, min_length=1,
                          description="the replicas' consumer group; a new one replays the topic")
    lease_seconds: float = Field(15.0, gt=0, description="an edge silent this long is removed")
    sweep_interval_seconds: float = Field(1.0, gt=0)
    leader_ttl_seconds: float = Field(5.0, gt=0)
    tombstone_seconds: int = Field(86400, ge=60)
