"""The token each session holds: who it is, what it may watch, its shared message bucket,
and when it lapses.

Guarantees: a session's principal, symbol limit, subject bucket and expiry events always
belong to the same token; a refresh either replaces all of them (same subject, valid
token) or none; a session forgotten here holds nothing here.
"""

from __future__ import annotations

from tickwire.edge.auth import Authenticator, Principal
from tickwire.edge.expiry import Due, TokenExpiry
from tickwire.edge.limits import SubjectLimits
from tickwire.edge.session import Session


class SessionTokens:
    def __init__(self, auth: Authenticator, subjects: SubjectLimits, warning_seconds: float):
        self._auth = auth
        self._subjects = subjects
        self._expiry = TokenExpiry(warning_seconds)

    def attach(self, session: Session, principal: Principal, refreshable: bool) -> None:
        """Give `session` the identity it was admitted with; only a `refreshable` one (a
        WebSocket) is warned before its token lapses, an SSE stream is just ended then."""
        self._hold(session, principal, refreshable)

    def refresh(self, session: Session, token: object) -> list[str]:
        """Swap in a new token for the same subject; returns the watched symbols it no
        longer allows (the caller unsubscribes them). Raises Unauthorized, changing nothing."""
        fresh = self._auth.refreshed(session.principal, token)
        self._hold(session, fresh, refreshable=True)
        return [s for s in session.symbols if not fresh.entitlements.allows(s)]

    def due(self, now: float) -> list[Due]:
        """Warnings and lapses due by `now` (Unix seconds), each once."""
        return self._expiry.due(now)

    def forget(self, session: Session) -> None:
        self._expiry.forget(session)

    def _hold(self, session: Session, principal: Principal, refreshable: bool) -> None:
        session.principal = principal
        session.max_symbols = principal.max_symbols
        session.user_inbound = self._subjects.bucket(principal.subject,
                                                     principal.messages_per_second)
        self._expiry.schedule(session, principal.expires_at, refreshable)
