"""Whether a client is still worth its socket: decided here, and only here.

Guarantee: `verdict` is pure (time is passed in). A client is shed with 1013 when a
write has waited on it longer than the slow-client budget, with 1001 when it answered
none of two pings (plus a second of grace); otherwise it is pinged once per interval.
"""

from __future__ import annotations

from aiohttp import WSCloseCode

from tickwire.edge.session import Session

TRY_AGAIN_LATER = 1013

PING = "ping"


def verdict(session: Session, now: float, heartbeat_interval: float,
            slow_client_seconds: float) -> tuple[int, str] | str | None:
    """(close code, reason) to shed the session, PING to ping it, or None."""
    blocked = session.blocked_since
    if blocked is not None and now - blocked > slow_client_seconds:
        return TRY_AGAIN_LATER, "slow consumer"
    if session.sink.answers_pings and now - session.last_heard > 2 * heartbeat_interval + 1:
        return WSCloseCode.GOING_AWAY, "missed heartbeats"
    if now - session.last_ping >= heartbeat_interval:
        return PING
    return None
