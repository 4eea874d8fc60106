"""Whether a client is still worth its socket: decided here, and only here.

Guarantees: `verdict` is pure (time is passed in). A client is shed with 1013 when a
write has waited on it longer than the slow-client budget, with 1001 when it answered
none of two pings (plus a second of grace); otherwise it is pinged once per interval.

`Schedule` says which sessions the sweep must look at, so a sweep costs what is due,
not one look at every socket: a session comes due when it may need a ping or may have
missed its heartbeats, never later than either (what it hears meanwhile only moves the
heartbeat deadline later). Slow consumers are not on it: a write that waits on the peer
puts its session in the set the sweep reads beside it (`Session(waiting=…)`).
"""

from __future__ import annotations

import heapq
from itertools import count

from aiohttp import WSCloseCode

from tickwire.edge.expiry import compacted
from tickwire.edge.session import Session

TRY_AGAIN_LATER = 1013

PING = "ping"


def verdict(session: Session, now: float, heartbeat_interval: float,
            slow_client_seconds: float) -> tuple[int, str] | str | None:
    """(close code, reason) to shed the session, PING to ping it, or None."""
    blocked = session.blocked_since
    if blocked is not None and now - blocked > slow_client_seconds:
        return TRY_AGAIN_LATER, "slow consumer"
    if session.sink.answers_pings and now - session.last_heard > _silence_limit(
            heartbeat_interval):
        return WSCloseCode.GOING_AWAY, "missed heartbeats"
    if now - session.last_ping >= heartbeat_interval:
        return PING
    return None


def _silence_limit(heartbeat_interval: float) -> float:
    return 2 * heartbeat_interval + 1


class Schedule:
    """One heap entry per tracked session, at the time it next needs a look. Entries of
    forgotten sessions are dropped lazily (`expiry.compacted`, as the token heap does),
    so a closed session is not held for long."""

    __slots__ = ("_interval", "_heap", "_generation", "_counter")

    def __init__(self, heartbeat_interval: float):
        self._interval = heartbeat_interval
        self._heap: list[tuple[float, int, Session]] = []
        self._generation: dict[Session, int] = {}  # session → the id of its live entry
        self._counter = count()

    def track(self, session: Session) -> None:
        """Schedule `session`'s next look (again, after the sweep has looked at it)."""
        interval = self._interval
        due = min(session.last_ping + interval, session.last_heard + _silence_limit(interval))
        generation = self._generation[session] = next(self._counter)
        heapq.heappush(self._heap, (due, generation, session))

    def forget(self, session: Session) -> None:
        if self._generation.pop(session, None) is not None:
            self._heap = compacted(self._heap, self._generation)

    def due(self, now: float) -> list[Session]:
        """The tracked sessions due by `now`, each taken off until `track`ed again."""
        heap, generation = self._heap, self._generation
        found: list[Session] = []
        while heap and heap[0][0] <= now:
            _, token, session = heapq.heappop(heap)
            if generation.get(session) == token:
                del generation[session]
                found.append(session)
        return found

    def __len__(self) -> int:
        return len(self._generation)
