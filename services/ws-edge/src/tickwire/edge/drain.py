"""Moving every client off this edge without a reconnect storm.

Guarantees: each session gets `reconnect` with a `retryAfterMs` spread over the window
and is then closed with 1001, the closes staggered evenly over `window` seconds; the
sessions are closed concurrently, so a client that does not read holds up only
itself: the whole drain ends within `window` + FLUSH_SECONDS + the sink's close bound,
however many such clients there are.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Collection

from aiohttp import WSCloseCode

from tickwire.core.models import reconnect_message
from tickwire.edge.session import Session

FLUSH_SECONDS = 1.0  # how long the reconnect notice may take to go out

Close = Callable[[Session, int, str], Awaitable[None]]


async def drain_sessions(sessions: Collection[Session], window: float, close: Close) -> None:
    order = list(sessions)
    random.shuffle(order)
    spread = max(window, 1.0)
    await asyncio.gather(*(
        _move(session, window * index / max(1, len(order)), spread, close)
        for index, session in enumerate(order)))


async def _move(session: Session, delay: float, spread: float, close: Close) -> None:
    await asyncio.sleep(delay)
    if session.closed:
        return
    session.send(reconnect_message(int(random.uniform(0, spread) * 1000)))
    await session.flush(timeout=FLUSH_SECONDS)
    await close(session, WSCloseCode.GOING_AWAY, "draining")
