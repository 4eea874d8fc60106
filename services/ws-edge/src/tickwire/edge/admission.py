"""Who may open a WebSocket or stream: decided before the upgrade, at no cost to the hub.

Refusals are plain HTTP answers with the error JSON of DESIGN.md §2: 503 while draining,
403 for a foreign Origin, 401 without a valid token, 429 for an address connecting too
fast, 503 for an address holding too many connections, 429 CONNECTION_LIMIT_EXCEEDED for a
token subject holding its limit of connections (WebSocket and SSE) on this edge.
"""

from __future__ import annotations

import ipaddress
import time

from aiohttp import web
from prometheus_client import Counter

from tickwire.core.service import error_response
from tickwire.edge.auth import Authenticator, Principal, Unauthorized
from tickwire.edge.limits import AddressAdmission, SubjectLimits
from tickwire.edge.settings import EdgeSettings

REFUSED = Counter("tickwire_edge_connections_refused_total",
                  "Connection attempts refused before the upgrade", ["reason"])


def forbidden_response(symbols: list[str]) -> web.Response:
    """403 FORBIDDEN naming the symbols the token is not entitled to."""
    return web.json_response({"error": {
        "code": "FORBIDDEN", "message": "not entitled to: " + ", ".join(symbols[:20])[:200],
        "symbols": symbols[:100]}}, status=403)


class Refused(Exception):
    def __init__(self, response: web.Response, reason: str):
        super().__init__(reason)
        self.response = response


class Admission:
    def __init__(self, settings: EdgeSettings):
        self._origins = settings.origins()
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in settings.proxies()]
        self.auth = Authenticator(settings)
        self._addresses = AddressAdmission(settings.max_connections_per_ip,
                                           settings.connections_per_second_per_ip,
                                           settings.connection_burst_per_ip)
        self.subjects = SubjectLimits()
        self.draining = False

    def client_address(self, request: web.Request) -> str:
        """The nearest address no trusted proxy vouches for. Proxies append to
        X-Forwarded-For (HAProxy as a header line of its own, after the client's), so only
        entries right of the last untrusted hop are believed: walking from the peer leftwards,
        each trusted hop's entry is taken while it is a valid IP address."""
        address = request.remote or ""
        entries = [entry.strip() for line in request.headers.getall("X-Forwarded-For", ())
                   for entry in line.split(",")]
        for entry in reversed(entries):
            if not self._trusted(address):
                break
            try:
                address = str(ipaddress.ip_address(entry))
            except ValueError:
                break
        return address

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def authenticate(self, request: web.Request) -> Principal:
        try:
            return self.auth.authenticate(request)
        except Unauthorized as exc:
            REFUSED.labels("unauthorized").inc()
            raise Refused(error_response(401, "UNAUTHORIZED", str(exc)), "unauthorized") from None

    def admit(self, request: web.Request) -> tuple[str, Principal]:
        """The client's address and identity; raises Refused. The caller must `release`."""
        if self.draining:
            REFUSED.labels("draining").inc()
            raise Refused(error_response(503, "DRAINING", "this edge is draining; reconnect"),
                          "draining")
        origin = request.headers.get("Origin")
        if self._origins and origin is not None and origin.rstrip("/") not in self._origins:
            REFUSED.labels("origin").inc()
            raise Refused(error_response(403, "FORBIDDEN_ORIGIN", "origin not allowed"), "origin")
        principal = self.authenticate(request)
        address = self.client_address(request)
        reason = self._addresses.admit(address, time.monotonic())
        if reason is not None:
            too_many = reason.startswith("too many")
            REFUSED.labels("address_cap" if too_many else "address_rate").inc()
            response = error_response(503 if too_many else 429, "RATE_LIMIT_EXCEEDED", reason)
            response.headers["Retry-After"] = "1"
            raise Refused(response, reason)
        if not self.subjects.admit(principal.subject, principal.max_connections):
            self._addresses.release(address)
            REFUSED.labels("subject_cap").inc()
            raise Refused(error_response(
                429, "CONNECTION_LIMIT_EXCEEDED",
                f"at most {principal.max_connections} connections per user on one edge"),
                "subject_cap")
        return address, principal

    def release(self, address: str, subject: str | None) -> None:
        self._addresses.release(address)
        self.subjects.release(subject)

    def forget_idle(self) -> None:
        self._addresses.forget_idle(time.monotonic())
