from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from tickwire.core.settings import ServiceSettings

KNOWN_PROVIDERS = ("twelvedata", "alphavantage", "simulated", "replay")
KNOWN_STREAMS = ("finnhub", "alpaca", "twelvedata", "simulated")
NO_STREAMS = "off"
STREAM_KEYS = {"finnhub": ("finnhub_api_key",), "alpaca": ("alpaca_key_id", "alpaca_secret_key"),
               "twelvedata": ("twelvedata_api_key",)}


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
    inactive_key_ttl_seconds: int = Field(300, ge=1, description="a symbol nobody watches keeps "
                                          "its Redis keys (cached quote, seq, feed state) this "
                                          "long, so a reload still finds them")

    alphavantage_api_key: str = ""
    alphavantage_base_url: str = "https://www.alphavantage.co"
    alphavantage_requests_per_minute: int = Field(5, ge=0, description="shared by all replicas; "
                                                  "0: unlimited")
    alphavantage_requests_per_day: int = Field(25, ge=0, description="per UTC day, shared by "
                                               "all replicas (the free key's cap); 0: unlimited")
    twelvedata_api_key: str = ""
    twelvedata_base_url: str = "https://api.twelvedata.com"
    twelvedata_credits_per_minute: int = Field(8, ge=0, description="shared by all replicas; "
                                               "0: unlimited")
    twelvedata_credits_per_day: int = Field(800, ge=0, description="per UTC day, shared by all "
                                            "replicas (the free plan's cap); 0: unlimited")
    twelvedata_credits_per_symbol: int = Field(1, ge=1, description="credits one symbol of a "
                                               "/quote request costs")
    simulated_seed: int = 0
    replay_file: str = Field("", description="CSV of quotes; empty: the sample in the package")
    replay_speed: float = Field(1.0, gt=0, description="replay clock speed (2: twice real time)")

    finnhub_api_key: str = Field("", description="Finnhub API key: enables the Finnhub trade "
                                                 "stream")
    finnhub_ws_url: str = Field("wss://ws.finnhub.io", description="Finnhub WebSocket endpoint")
    finnhub_stream_symbols: int = Field(50, ge=1, description="symbols one Finnhub key streams")
    alpaca_key_id: str = Field("", description="Alpaca API key id (with the secret: enables "
                                               "the Alpaca stream)")
    alpaca_secret_key: str = Field("", description="Alpaca API secret key")
    alpaca_ws_url: str = Field("wss://stream.data.alpaca.markets/v2/iex",
                               description="Alpaca market data v2 stream (/v2/iex or /v2/sip)")
    alpaca_stream_symbols: int = Field(30, ge=1, description="symbols one Alpaca key streams")
    twelvedata_ws_url: str = Field("wss://ws.twelvedata.com/v1/quotes/price",
                                   description="Twelve Data price stream endpoint")
    twelvedata_stream_symbols: int = Field(8, ge=1, description="symbols one Twelve Data key "
                                           "streams")
    simulated_stream_symbols: int = Field(1000, ge=1, description="symbols the simulated "
                                          "stream holds")
    simulated_trades_per_second: float = Field(10.0, gt=0, description="per symbol, on average")
    # After the keys: its validator checks the named streams have theirs.
    streams: str = Field("", description="comma-separated order of upstream WebSocket streams; "
                                         "empty: finnhub/alpaca when keyed, else simulated "
                                         "when polling is the offline default; off: none")
    max_ticks_per_second: float = Field(20.0, gt=0, description="per symbol: stream trades are "
                                        "conflated to at most this many ticks")
    stream_lease_seconds: float = Field(10.0, gt=0, description="how long a replica's hold on "
                                        "a provider key's connection lasts unless renewed")

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

    @field_validator("streams")
    @classmethod
    def _known_streams(cls, value: str, info: ValidationInfo) -> str:
        chosen = provider_list(value)
        if chosen == [NO_STREAMS]:
            return value
        unknown = [s for s in chosen if s not in KNOWN_STREAMS]
        if unknown:
            raise ValueError(f"unknown stream {unknown[0]!r} "
                             f"(known: {', '.join(KNOWN_STREAMS)}, or {NO_STREAMS})")
        for stream in chosen:
            for key in STREAM_KEYS.get(stream, ()):
                if not info.data.get(key):
                    raise ValueError(f"the {stream} stream needs TICKWIRE_INGESTOR_{key.upper()}")
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

    def stream_order(self) -> list[str]:
        """The upstream streams to hold, in order (the most-watched symbols go first)."""
        chosen = provider_list(self.streams)
        if chosen == [NO_STREAMS]:
            return []
        if chosen:
            return chosen
        keyed = [name for name, key in (("finnhub", self.finnhub_api_key),
                                        ("alpaca", self.alpaca_key_id and self.alpaca_secret_key))
                 if key]
        offline = not provider_list(self.providers) and self.provider_order() == ["simulated"]
        return keyed or (["simulated"] if offline else [])


def provider_list(value: str) -> list[str]:
    return [p.strip().lower() for p in value.split(",") if p.strip()]
