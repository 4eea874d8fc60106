"""Client configuration: the seed's WebSocketConfig in snake_case, plus the REST fallback.

Durations are in seconds (the TypeScript client takes milliseconds, as the seed does).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from tickwire.client.rollout import default_client_id_file, persistent_client_id


def trusting(ca_file: str) -> ssl.SSLContext:
    """A client TLS context that trusts the system's certificates and those in `ca_file`."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_file)
    return context


@dataclass(frozen=True, slots=True)
class ClientConfig:
    url: str
    """The edge (or load balancer) WebSocket endpoint, e.g. ws://127.0.0.1:8080/ws."""
    reconnect_interval: float = 1.0
    """Scale of the backoff schedule 1, 2, 4, 8, 16, 30 (max) × this, with full jitter."""
    max_reconnect_attempts: int = 10
    """Consecutive failed attempts before the client polls the REST fallback (it keeps
    retrying the socket in the background)."""
    heartbeat_interval: float = 30.0
    """Ping cadence: protocol pings detect a dead socket, `ping` actions measure latency."""
    message_queue_size: int = 100
    """Actions (subscribe / unsubscribe) made while the socket is down, kept for replay."""
    enable_compression: bool = False
    """Offer permessage-deflate."""
    enable_auto_reconnect: bool = True
    fallback_url: str | None = None
    """HTTP base of the REST fallback; derived from `url` (ws→http, path dropped) if None."""
    polling_interval: float = 30.0
    fallback_to_polling: bool = True
    wire_format: Literal["msgpack", "json"] = "msgpack"
    connect_timeout: float = 10.0
    """Seconds for opening a socket and for its close handshake (`disconnect()` returns
    within it even when the edge never answers the close)."""
    token: str | None = None
    """A JWT for edges that require one; sent as `Authorization: Bearer`."""
    token_provider: Callable[[], str | None | Awaitable[str | None]] | None = None
    """Returns a current JWT (sync or async). Called before every (re)connect, when the
    edge says the token is expiring (the client then sends `refresh`), and after a 4001
    close; its last answer goes on REST fallback reads too. Takes precedence over `token`."""
    update_buffer_size: int = 10_000
    """Per `updates()` iterator; when a consumer falls this far behind, the oldest go."""
    ca_file: str | None = None
    """A PEM file of certificates to trust for wss:// and https:// (e.g. the local stack's
    generated CA), in addition to the system's."""
    ssl_context: ssl.SSLContext | None = None
    """A ready TLS context for wss:// and https://; takes precedence over `ca_file`."""
    follow_rollout: bool = True
    """Ask the edge's `GET /api/config` at `connect()`: outside the WebSocket rollout (or
    with WebSockets switched off) the client polls the REST fallback and opens no socket."""
    client_id: str | None = None
    """The id the rollout buckets this client by; None: the one kept in `client_id_file`."""
    client_id_file: str | None = None
    """Where the persistent client id lives; None: `$XDG_CONFIG_HOME/tickwire/client-id`
    (`~/.config/tickwire/client-id`)."""

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("ws", "wss"):
            raise ValueError(f"url must be ws:// or wss://, got {self.url!r}")
        for name in ("reconnect_interval", "heartbeat_interval", "polling_interval",
                     "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_reconnect_attempts < 1 or self.message_queue_size < 1:
            raise ValueError("max_reconnect_attempts and message_queue_size must be >= 1")
        if self.ca_file is not None and self.ssl_context is None:
            try:
                # Built once, here: a missing or unreadable file is a config error, not
                # a connection failure retried forever.
                object.__setattr__(self, "ssl_context", trusting(self.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"ca_file {self.ca_file!r}: {exc}") from exc

    @property
    def tls(self) -> ssl.SSLContext | bool:
        """What aiohttp takes as `ssl=`: the configured context, or True (system trust)."""
        return self.ssl_context if self.ssl_context is not None else True

    def rollout_id(self) -> str:
        """The explicit `client_id`, or the persistent one (read or made on first use)."""
        if self.client_id:
            return self.client_id
        path = Path(self.client_id_file) if self.client_id_file else default_client_id_file()
        return persistent_client_id(path)

    @property
    def rest_base(self) -> str:
        if self.fallback_url:
            return self.fallback_url.rstrip("/")
        parts = urlsplit(self.url)
        scheme = "https" if parts.scheme == "wss" else "http"
        return urlunsplit((scheme, parts.netloc, "", "", ""))
