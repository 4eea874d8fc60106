"""Optional JWT auth: who a client is, what it may watch, and until when.

Off unless TICKWIRE_EDGE_JWT_SECRET (HS256) or TICKWIRE_EDGE_JWT_PUBLIC_KEY (RS256) is
set. The token comes from `?token=` or `Authorization: Bearer` and is checked before the
WebSocket upgrade, on every REST read and at the start of every SSE stream; an open
socket may replace it with `{"action":"refresh","token":…}`.

Guarantees:
- Only the configured algorithms are accepted (never `none`, never an HS256 token
  signed with the RS256 public key); `exp`, `nbf` and `aud` are checked, and `exp` is
  required when TICKWIRE_EDGE_JWT_REQUIRE_EXP is on. Tokens over MAX_TOKEN_BYTES are refused
  before any decoding.
- Claims shape the principal: `sub` (required: the subject limits are counted by and a
  refresh must keep), `tier` (symbol,
  connection and message-rate limits per tier), `symbols` (entitlement patterns; without
  the claim TICKWIRE_EDGE_DEFAULT_ENTITLEMENTS applies). A malformed claim refuses the
  token rather than guessing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from aiohttp import web

from tickwire.edge.entitlements import Entitlements, InvalidEntitlements
from tickwire.edge.settings import EdgeSettings

MAX_TOKEN_BYTES = 8192


class Unauthorized(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated client (or the anonymous one when auth is off)."""

    subject: str | None
    tier: str | None
    max_symbols: int
    max_connections: int
    messages_per_second: float
    entitlements: Entitlements
    expires_at: float | None = None  # Unix seconds of the token's `exp`

    def expires_in(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)


class Authenticator:
    def __init__(self, settings: EdgeSettings):
        self._settings = settings
        self._symbol_tiers = settings.tiers()
        self._connection_tiers = settings.connection_tiers()
        self._rate_tiers = settings.rate_tiers()
        self._audience = settings.jwt_audience or None
        require = ["sub", "exp"] if settings.jwt_require_exp else ["sub"]
        # Without a configured audience `aud` is not checked (pyjwt would refuse every
        # token that carries one).
        self._options = {"require": require, "verify_aud": self._audience is not None}
        self._default_entitlements = settings.default_entitlements_parsed()
        self._keys: list[tuple[str, str]] = []
        if settings.jwt_secret:
            self._keys.append((settings.jwt_secret, "HS256"))
        if settings.jwt_public_key:
            self._keys.append((settings.jwt_public_key, "RS256"))
        self._anonymous = self._principal({})

    def authenticate(self, request: web.Request) -> Principal:
        """The request's principal; raises Unauthorized."""
        if not self._keys:
            return self._anonymous
        token = request.query.get("token")
        header = request.headers.get("Authorization", "")
        if not token and header.lower().startswith("bearer "):
            token = header[7:].strip()
        if not token:
            raise Unauthorized("a token is required")
        return self.verify(token)

    def verify(self, token: object) -> Principal:
        """The principal a token stands for; raises Unauthorized."""
        if not self._keys:
            return self._anonymous
        if not isinstance(token, str) or not token:
            raise Unauthorized("token must be a non-empty string")
        if len(token) > MAX_TOKEN_BYTES or len(token.encode()) > MAX_TOKEN_BYTES:
            raise Unauthorized(f"token longer than {MAX_TOKEN_BYTES} bytes")
        claims = self._decode(token)
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized("invalid token: sub must be a non-empty string")
        return self._principal(claims)

    def _decode(self, token: str) -> dict:
        error: Exception | None = None
        for key, algorithm in self._keys:
            try:
                return jwt.decode(token, key, algorithms=[algorithm], audience=self._audience,
                                  options=self._options)
            except jwt.ExpiredSignatureError:
                raise Unauthorized("token expired") from None
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                error = exc
        raise Unauthorized(f"invalid token: {str(error)[:200]}")

    def _principal(self, claims: dict) -> Principal:
        settings = self._settings
        tier = claims.get("tier") if isinstance(claims.get("tier"), str) else None
        subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        if "symbols" in claims:
            try:
                entitlements = Entitlements.parse(claims["symbols"], settings.unprefixed_exchange)
            except InvalidEntitlements as exc:
                raise Unauthorized(f"invalid symbols claim: {exc}") from None
        else:
            entitlements = self._default_entitlements
        exp = claims.get("exp")
        return Principal(
            subject=subject, tier=tier,
            max_symbols=self._symbol_tiers.get(tier, settings.max_symbols),
            max_connections=self._connection_tiers.get(tier, settings.max_connections_per_user),
            messages_per_second=self._rate_tiers.get(tier, settings.user_messages_per_second),
            entitlements=entitlements,
            expires_at=float(exp) if isinstance(exp, (int, float)) else None)

    def refreshed(self, current: Principal, token: object) -> Principal:
        """The principal of a refresh token for the same subject; raises Unauthorized."""
        fresh = self.verify(token)
        if fresh.subject != current.subject:
            raise Unauthorized("a refresh token must be for the same subject")
        return fresh
