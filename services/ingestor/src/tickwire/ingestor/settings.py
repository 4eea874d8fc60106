from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from tickwire.core.settings import ServiceSettings

KNOWN_PROVIDERS = ("twelvedata", "alphavantage", "simulated", "replay")


class IngestorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TICKWIRE_INGESTOR_", populate_by_name=True,
                                      extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8083, ge=1, le=65535)
    replica_id: str = ""
    providers: str = Field("", description="comma-separated order; empty: the keyed ones, "
                                           "else simulated")
    poll_interval: float = Field(2.0, gt=0, description="seconds between fetches of a symbol")
    freshness_seconds: float = Field(10.0, gt=0, description="a quote older is stale (and, if "
                                     "every provider fails, announced as DATA_STALE)")

    alphavantage_api_key: str = ""
    alphavantage_base_url: str = "https://www.alphavantage.co"
    alphavantage_requests_per_minute: int = Field(5, ge=0, description="shared by all replicas; "
                                                  "0: unlimited")
    twelvedata_api_key: str = ""
    twelvedata_base_url: str = "https://api.twelvedata.com"
    twelvedata_credits_per_minute: int = Field(8, ge=0, description="shared by all replicas; "
                                               "0: unlimited")
    twelvedata_credits_per_symbol: int = Field(1, ge=1, description="credits one symbol of a "
                                               "/quote request costs")
    simulated_seed: int = 0
    replay_file: str = Field("", description="CSV of quotes; empty: the sample in the package")
    replay_speed: float = Field(1.0, gt=0, description="replay clock speed (2: twice real time)")

    request_timeout_seconds: float = Field(5.0, gt=0)
    retry_attempts: int = Field(3, ge=1, description="tries per request for transient failures")
    retry_backoff_seconds: float = Field(0.2, gt=0, description="base of the exponential, "
                                         "jittered wait between tries")
    retry_backoff_max_seconds: float = Field(2.0, gt=0)
    breaker_failures: int = Field(5, ge=1, description="consecutive failed requests that open "
                                  "a provider's circuit")
    breaker_reset_seconds: float = Field(30.0, gt=0, description="open circuit cool-down "
                                         "before one probe request")
    rate_limited_pause_seconds: float = Field(15.0, ge=0, description="how long a provider "
                                              "that answered 'rate limited' is skipped")

    @field_validator("providers")
    @classmethod
    def _known(cls, value: str) -> str:
        unknown = [p for p in provider_list(value) if p not in KNOWN_PROVIDERS]
        if unknown:
            raise ValueError(f"unknown provider {unknown[0]!r} (known: {', '.join(KNOWN_PROVIDERS)})")
        return value

    @field_validator("replay_file")
    @classmethod
    def _replay_file(cls, value: str) -> str:
        if value:
            from tickwire.ingestor.providers.replay import ReplayData

            ReplayData.load(Path(value))  # a ValueError names the file and line
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
