import os
import socket
import uuid

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from tickwire.core.settings import ServiceSettings


class EdgeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TICKWIRE_EDGE_", populate_by_name=True,
                                      extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8081, ge=1, le=65535)
    edge_id: str = Field("", pattern=r"^[A-Za-z0-9._\-]{0,64}$",
                         validation_alias=AliasChoices("TICKWIRE_EDGE_ID", "edge_id"))
    heartbeat_interval: float = Field(30.0, gt=0, description="seconds between WebSocket pings")
    registry_heartbeat_seconds: float = Field(5.0, gt=0,
                                              description="seconds between edge_heartbeat events")
    poll_interest_seconds: float = Field(90.0, ge=0)
    freshness_seconds: float = Field(10.0, gt=0, description="an older quote is served as stale")
    drain_seconds: float = Field(10.0, ge=0)
    max_frame_bytes: int = Field(65536, ge=256)
    max_symbols: int = Field(500, ge=1)
    compression: bool = True

    @model_validator(mode="after")
    def _default_edge_id(self):
        if not self.edge_id:
            self.edge_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return self
