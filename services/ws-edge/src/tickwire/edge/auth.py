"""Optional JWT auth, checked before the WebSocket upgrade (and on REST/SSE reads).

Off unless TICKWIRE_EDGE_JWT_SECRET (HS256) or TICKWIRE_EDGE_JWT_PUBLIC_KEY (RS256) is
set. The token comes from `?token=` or `Authorization: Bearer`; its `tier` claim picks
the per-connection symbol limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from aiohttp import web

from tickwire.edge.settings import EdgeSettings


class Unauthorized(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str | None
    max_symbols: int


class Authenticator:
    def __init__(self, settings: EdgeSettings):
        self._default_limit = settings.max_symbols
        self._tiers = settings.tiers()
        self._audience = settings.jwt_audience or None
        self._keys: list[tuple[str, str]] = []
        if settings.jwt_secret:
            self._keys.append((settings.jwt_secret, "HS256"))
        if settings.jwt_public_key:
            self._keys.append((settings.jwt_public_key, "RS256"))

    def authenticate(self, request: web.Request) -> Principal:
        if not self._keys:
            return Principal(None, self._default_limit)
        token = request.query.get("token")
        header = request.headers.get("Authorization", "")
        if not token and header.lower().startswith("bearer "):
            token = header[7:].strip()
        if not token:
            raise Unauthorized("a token is required")
        claims = self._verify(token)
        tier = claims.get("tier")
        limit = self._tiers.get(tier, self._default_limit) if isinstance(tier, str) else self._default_limit
        subject = claims.get("sub")
        return Principal(subject if isinstance(subject, str) else None, limit)

    def _verify(self, token: str) -> dict:
        error: Exception | None = None
        for key, algorithm in self._keys:
            try:
                return jwt.decode(token, key, algorithms=[algorithm], audience=self._audience)
            except jwt.PyJWTError as exc:
                error = exc
        raise Unauthorized(f"invalid token: {error}")
