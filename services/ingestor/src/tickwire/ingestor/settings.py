from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from tickwire.core.settings import ServiceSettings

KNOWN_PROVIDERS = ("twelvedata", "alphavantage", "simulated")


class IngestorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TICKWIRE_INGESTOR_", populate_by_name=True,
                                      extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8083, ge=1, le=65535)
    replica_id: str = ""
    providers: str = Field("", description="comma-separated order; empty: the keyed ones, "
                                           "else simulated")
    poll_interval: float = Field(2.0, gt=0, description="seconds between fetches of a symbol")
    freshness_seconds: float = Field(10.0, gt=0, description="a cached quote older is stale")
    alphavantage_api_key: str = ""
    alphavantage_base_url: str = "https://www.alphavantage.co"
    twelvedata_api_key: str = ""
    twelvedata_base_url: str = "https://api.twelvedata.com"
    simulated_seed: int = 0

    @field_validator("providers")
    @classmethod
    def _known(cls, value: str) -> str:
        unknown = [p for p in provider_list(value) if p not in KNOWN_PROVIDERS]
        if unknown:
            raise ValueError(f"unknown provider {unknown[0]!r} (known: {', '.join(KNOWN_PROVIDERS)})")
        return value

    def provider_order(self) -> list[str]:
        chosen = provider_list(self.providers)
        if chosen:
            return chosen
        keyed = [name for name, key in (("twelvedata", self.twelvedata_api_key),
                                        ("alphavantage", self.alphavantage_api_key)) if key]
        return keyed or ["simulated"]


def provider_list(value: str) -> list[str]:
    return [p.strip().lower() for p in value.split(",") if p.strip()]
