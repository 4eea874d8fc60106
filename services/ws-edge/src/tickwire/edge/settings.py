import ipaddress

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tickwire.core.settings import ServiceSettings, generated_id
from tickwire.edge.entitlements import Entitlements


class EdgeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TICKWIRE_EDGE_", populate_by_name=True,
                                      extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8081, ge=1, le=65535)
    workers: str = Field("1", pattern=r"^(auto|[1-9][0-9]?)$", description="edge processes "
                         "sharing the port (SO_REUSEPORT), or auto: one per available core")
    listen_backlog: int = Field(4096, ge=16, description="pending connections the listening "
                                "socket queues (a reconnect storm arrives at once; the kernel "
                                "caps it at net.core.somaxconn)")
    edge_id: str = Field("", pattern=r"^[A-Za-z0-9._\-]{0,64}$",
                         validation_alias=AliasChoices("TICKWIRE_EDGE_ID", "edge_id"))

    # Liveness of clients and of this edge
    heartbeat_interval: float = Field(30.0, gt=0, description="seconds between WebSocket pings; "
                                                              "two missed pings close the socket")
    registry_heartbeat_seconds: float = Field(5.0, gt=0,
                                              description="seconds between edge_heartbeat events")
    slow_client_seconds: float = Field(10.0, gt=0, description="a client that keeps a write "
                                                               "waiting this long is closed (1013)")
    drain_seconds: float = Field(10.0, ge=0, description="window over which a drain spreads closes")
    stall_trace_ms: int = Field(0, ge=0, description="when the event loop stalls this long, "
                                "log the stack it is stuck in (`event loop stalled`, at most "
                                "one line a second; a diagnostic: a watchdog thread wakes "
                                "four times per period); 0: off")

    # Data
    poll_interest_seconds: float = Field(90.0, ge=0,
                                         description="a REST read keeps a symbol active this long")
    freshness_seconds: float = Field(10.0, gt=0, description="an older quote is served as stale")
    cold_read_wait_ms: int = Field(3000, ge=0, description="a REST read of a symbol with no "
                                   "quote yet waits this long for the first one (0: answers "
                                   "404 at once)")
    cold_read_max_waiting: int = Field(5000, ge=0, description="symbols REST reads may wait for "
                                       "at once on one edge (a request waits for each of its "
                                       "missing symbols); reads beyond it answer at once")

    unsubscribe_delay_seconds: float = Field(1.0, ge=0, description="a symbol's last subscriber "
                                             "leaving unsubscribes it upstream this much later, "
                                             "unless it is subscribed again meanwhile")

    # What clients are told (GET /api/config)
    websocket_enabled: bool = Field(True, description="false: every client polls REST "
                                    "instead of streaming over the WebSocket")
    websocket_rollout_percent: int = Field(100, ge=0, le=100, description="share of clients "
                                           "(bucketed by their client id) that stream over "
                                           "the WebSocket; the rest poll REST")
    client_polling_interval_ms: int = Field(30000, ge=100, description="how often clients "
                                            "that poll read the REST endpoints")
    client_reconnect_interval_ms: int = Field(1000, ge=10, description="base of the clients' "
                                              "reconnect backoff")
    client_max_reconnect_attempts: int = Field(10, ge=1, description="failed reconnects "
                                               "before a streaming client polls meanwhile")

    # Limits
    max_frame_bytes: int = Field(65536, ge=256)
    max_symbols: int = Field(500, ge=1, description="per connection, unless a JWT tier says more")
    messages_per_second: float = Field(50.0, gt=0)
    message_burst: float = Field(100.0, ge=1)
    symbol_changes_per_second: float = Field(100.0, gt=0, description="symbols a connection "
                                             "may add by subscribing, per second")
    symbol_change_burst: float = Field(1000.0, ge=1, description="and at once (never less than "
                                       "twice the connection's symbol limit)")
    rate_limit_close_seconds: float = Field(5.0, gt=0, description="over the message rate this "
                                                                   "long: closed with 1008")
    max_connections_per_ip: int = Field(1000, ge=1)
    connections_per_second_per_ip: float = Field(50.0, gt=0)
    connection_burst_per_ip: float = Field(100.0, ge=1)
    trusted_proxies: str = Field("", description="comma-separated addresses or CIDR ranges of "
                                                 "proxies whose X-Forwarded-For is believed")
    allowed_origins: str = Field("", description="comma-separated; empty allows any Origin")
    request_head_timeout_seconds: float = Field(10.0, gt=0, description="a connection that has "
                                                "not sent a whole request head this long after "
                                                "it opened (or after its last response) is "
                                                "closed; also the idle keep-alive")
    compression: bool = True
    socket_send_buffer: int = Field(131072, ge=0, description="bytes of kernel send buffer per "
                                    "client socket (0: the kernel's autotuning); small keeps a "
                                    "stalled client's backlog, and its detection, short")

    # Auth (off unless a secret or public key is set)
    jwt_secret: str = ""
    jwt_public_key: str = Field("", description="PEM text of an RS256 public key")
    jwt_audience: str = ""
    tier_symbol_limits: str = Field("", description="e.g. 'free=50,pro=2000': symbols per "
                                                    "connection by the token's tier claim")
    tier_connection_limits: str = Field("", description="e.g. 'free=2,pro=20': connections per "
                                        "subject on one edge by the token's tier claim")
    tier_message_rates: str = Field("", description="e.g. 'free=10,pro=100': client messages per "
                                    "second per subject by the token's tier claim")
    jwt_require_exp: bool = Field(False, description="refuse tokens without an exp claim")
    default_entitlements: str = Field("*", description="comma-separated symbol patterns (AAPL, "
                                      "NASDAQ:*, *) a token without a symbols claim may watch")
    unprefixed_exchange: str = Field("", pattern=r"^[A-Z0-9.\-_]{0,20}$",
                                     description="the exchange an unprefixed symbol (AAPL) "
                                     "belongs to when matching EXCHANGE:* entitlements")
    max_connections_per_user: int = Field(50, ge=1, description="open connections (WebSocket "
                                          "and SSE) per token subject on one edge")
    user_messages_per_second: float = Field(100.0, gt=0, description="client messages per second "
                                            "per token subject, over all its sockets on one edge")
    token_expiry_warning_seconds: float = Field(60.0, ge=0, description="token_expiring is sent "
                                                "this long before a socket's token lapses")

    @field_validator("tier_symbol_limits", "tier_connection_limits")
    @classmethod
    def _tiers(cls, value: str) -> str:
        parse_tiers(value)
        return value

    @field_validator("tier_message_rates")
    @classmethod
    def _rate_tiers(cls, value: str) -> str:
        parse_tiers(value, float)
        return value

    @field_validator("default_entitlements")
    @classmethod
    def _entitlements(cls, value: str) -> str:
        Entitlements.parse(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in filter(None, (p.strip() for p in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or CIDR range") from None
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        # RFC 7518 §3.2: an HS256 key is at least as long as the hash (256 bits).
        if value and len(value.encode()) < 32:
            raise ValueError("an HS256 secret must be at least 32 bytes")
        return value

    @field_validator("jwt_public_key")
    @classmethod
    def _pem(cls, value: str) -> str:
        if value and "BEGIN PUBLIC KEY" not in value:
            raise ValueError("must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
        return value.replace("\\n", "\n")

    @model_validator(mode="after")
    def _default_edge_id(self):
        if not self.edge_id:
            self.edge_id = generated_id()
        return self

    def origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip())

    def proxies(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    def tiers(self) -> dict[str, int]:
        return parse_tiers(self.tier_symbol_limits)

    def connection_tiers(self) -> dict[str, int]:
        return parse_tiers(self.tier_connection_limits)

    def rate_tiers(self) -> dict[str, float]:
        return parse_tiers(self.tier_message_rates, float)

    def default_entitlements_parsed(self) -> Entitlements:
        return Entitlements.parse(self.default_entitlements, self.unprefixed_exchange)


def parse_tiers(value: str, kind: type = int) -> dict:
    """'free=50,pro=2000' → {"free": 50, "pro": 2000}; each limit a positive `kind`."""
    tiers: dict = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, limit = item.partition("=")
        try:
            number = kind(limit.strip())
        except ValueError:
            number = 0
        if not sep or not name.strip() or not number > 0:
            raise ValueError(f"{item!r} is not tier=limit")
        tiers[name.strip()] = number
    return tiers
