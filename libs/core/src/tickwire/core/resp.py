"""What the raw-RESP connections (`pubsub`, `scripts`) share: packing a command and opening
a socket to the server a redis-py pool describes.

They go below redis-py where a per-message or per-command cost matters; they connect as
that pool would (host and port or a Unix socket path, TLS), so one `TICKWIRE_REDIS_URL`
configures every connection of a service.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from redis.connection import SSLConnection, UnixDomainSocketConnection

P = TypeVar("P", bound=asyncio.Protocol)


def command(*parts: bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def credentials(connection_kwargs: dict[str, Any]) -> list[bytes]:
    """AUTH's arguments for the pool's connections ([username,] password), or [] for none."""
    if not connection_kwargs.get("password"):
        return []
    found = [str(connection_kwargs["password"]).encode()]
    if connection_kwargs.get("username"):
        found.insert(0, str(connection_kwargs["username"]).encode())
    return found


async def open_connection(protocol: Callable[[], P], connection_kwargs: dict[str, Any],
                          connection_class: type, timeout: float) -> P:
    """A connected `protocol()`, or asyncio.TimeoutError / OSError."""
    loop = asyncio.get_running_loop()
    kwargs = connection_kwargs
    if issubclass(connection_class, UnixDomainSocketConnection):
        connecting = loop.create_unix_connection(protocol, kwargs["path"])
    else:
        tls = None
        if issubclass(connection_class, SSLConnection):
            tls = ssl.create_default_context(cafile=kwargs.get("ssl_ca_certs"))
            if kwargs.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
        connecting = loop.create_connection(protocol, kwargs.get("host", "localhost"),
                                            kwargs.get("port", 6379), ssl=tls)
    _, conn = await asyncio.wait_for(connecting, timeout)
    return conn
