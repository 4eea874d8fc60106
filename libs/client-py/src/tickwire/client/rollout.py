"""The WebSocket rollout: which transport this client uses, decided by the edge's
`GET /api/config` and a stable bucket of the client's id.

Guarantees:
- A client id always lands in the same bucket 0..99 (FNV-1a, 32 bits, over its UTF-8
  bytes, mod 100; the TypeScript client computes the same), so a client keeps its transport
  while the rollout percentage stays put, and raising the percentage only moves clients
  from polling to streaming.
- The id persists in a file (`$XDG_CONFIG_HOME/tickwire/client-id` by default) unless one
  is given; if the file cannot be read or written, the id lasts as long as the process.
- An edge that cannot answer `/api/config` leaves the client streaming (its reconnect and
  polling fallback still apply), and the choice says so.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, Literal

import aiohttp
import orjson

log = logging.getLogger(__name__)

Mode = Literal["websocket", "polling"]
Reason = Literal["disabled", "rollout", "in-rollout", "no-config"]


def rollout_bucket(client_id: str) -> int:
    """FNV-1a (32 bits) of the UTF-8 bytes of `client_id`, mod 100."""
    value = 0x811C9DC5
    for byte in client_id.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value % 100


def default_client_id_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "tickwire" / "client-id"


def persistent_client_id(path: Path) -> str:
    """The id kept in `path`, made (and written) on first use."""
    try:
        known = path.read_text().strip()
        if known:
            return known
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("tickwire: cannot read the client id file %s: %s", path, exc)
    made = str(uuid.uuid4())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(made + "\n")
        partial.replace(path)  # atomic: two processes starting at once keep one id each, whole
    except OSError as exc:
        log.warning("tickwire: cannot keep a client id in %s (%s); this process's id is "
                    "its own", path, exc)
    return made


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The body of `GET /api/config`."""

    websocket_enabled: bool
    websocket_rollout_percent: int
    polling_interval_ms: int
    reconnect_interval_ms: int
    max_reconnect_attempts: int

    @classmethod
    def from_body(cls, body: Any) -> ClientSettings | None:
        """None for anything that is not the edge's answer."""
        if not isinstance(body, dict) or not isinstance(body.get("websocketEnabled"), bool):
            return None
        numbers = ("websocketRolloutPercent", "pollingIntervalMs", "reconnectIntervalMs",
                   "maxReconnectAttempts")
        if not all(isinstance(body.get(k), int | float) and not isinstance(body.get(k), bool)
                   for k in numbers):
            return None
        return cls(body["websocketEnabled"],
                   min(100, max(0, int(body["websocketRolloutPercent"]))),
                   int(body["pollingIntervalMs"]), int(body["reconnectIntervalMs"]),
                   int(body["maxReconnectAttempts"]))


@dataclass(frozen=True, slots=True)
class TransportChoice:
    mode: Mode
    reason: Reason
    bucket: int | None  # None when no bucket was needed (no config, off, 0 or 100 %)
    percent: int | None

    @property
    def why(self) -> str:
        """Why, for people: `rollout 10 %`, `websocket disabled` or `no rollout config`."""
        if self.reason == "no-config":
            return "no rollout config"
        if self.reason == "disabled":
            return "websocket disabled"
        return f"rollout {self.percent} %"

    @property
    def label(self) -> str:
        """For people: "polling (rollout 0 %)", "websocket (rollout 100 %)", …"""
        return f"{self.mode} ({self.why})"


def choose_transport(settings: ClientSettings | None,
                     client_id: Callable[[], str]) -> TransportChoice:
    """`client_id` is asked only when the bucket matters, a rollout between 1 and 99 %
    (so a client of an edge that rolls out to everyone never makes or reads an id file)."""
    if settings is None:
        return TransportChoice("websocket", "no-config", None, None)
    percent = settings.websocket_rollout_percent
    if not settings.websocket_enabled:
        return TransportChoice("polling", "disabled", None, percent)
    if percent in (0, 100):
        return TransportChoice("polling" if percent == 0 else "websocket",
                               "rollout" if percent == 0 else "in-rollout", None, percent)
    bucket = rollout_bucket(client_id())
    if bucket < percent:
        return TransportChoice("websocket", "in-rollout", bucket, percent)
    return TransportChoice("polling", "rollout", bucket, percent)


async def fetch_client_settings(session: aiohttp.ClientSession, base: str,
                                headers: dict[str, str], timeout: float) -> ClientSettings | None:
    """`GET {base}/api/config`; None when the edge does not answer it (an older edge, a
    network failure)."""
    try:
        async with session.get(f"{base}/api/config", headers=headers,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                return None
            return ClientSettings.from_body(orjson.loads(await response.read()))
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        log.debug("tickwire: no client settings from %s: %r", base, exc)
        return None
