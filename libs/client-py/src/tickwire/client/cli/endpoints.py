"""Where the CLI finds the stack: options first, then TICKWIRE_CLI_* variables, then the
local `make run` defaults (DESIGN ports)."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from tickwire.client.config import trusting

ENVIRONMENT = {
    "TICKWIRE_CLI_URL": ("http://127.0.0.1:8080",
                         "base URL of an edge or the load balancer (REST; the WebSocket is "
                         "its /ws, wss:// for https://)"),
    "TICKWIRE_CLI_REGISTRY_URL": ("http://127.0.0.1:8082", "base URL of the registry"),
    "TICKWIRE_CLI_INGESTOR_URL": ("http://127.0.0.1:8083", "base URL of the ingestor"),
    "TICKWIRE_CLI_EDGE_URLS": ("", "comma-separated base URLs of edges that `tickwire status` "
                                   "probes directly, besides TICKWIRE_CLI_URL"),
    "TICKWIRE_CLI_CA_FILE": ("", "PEM file of certificates to trust for https:// and wss://"),
}
"""Each variable the CLI reads: (default, meaning); docs/settings.md lists them."""


def env(name: str) -> str:
    return os.environ.get(name) or ENVIRONMENT[name][0]


@dataclass(frozen=True)
class Endpoints:
    url: str
    registry_url: str
    ingestor_url: str
    edge_urls: tuple[str, ...]
    ca_file: str | None

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"--url must be http:// or https://, got {self.url!r}")
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))

    def tls(self) -> ssl.SSLContext | bool:
        """aiohttp's `ssl=`: the CA file's context, or True for the system's trust."""
        if not self.ca_file:
            return True
        try:
            return trusting(self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"--ca-file {self.ca_file!r}: {exc}") from exc


def base(url: str) -> str:
    return url.rstrip("/")
