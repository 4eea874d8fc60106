"""liveness.Schedule: the sweep looks at a session when it may need a ping or may have
missed its heartbeats, never later, and not at every session on every sweep; a write
that waits on its peer puts its session where the sweep finds slow consumers."""

from __future__ import annotations

import asyncio

import pytest

from tickwire.edge import liveness
from tickwire.edge.session import Session

from edge_fakes import RecordingSink

INTERVAL = 30.0
SLOW = 10.0


def _sweep(schedule: liveness.Schedule, now: float) -> list[tuple[str, object]]:
    """What the edge's sweep does with the sessions due by `now`: a ping marks the
    session pinged; anything else it would shed is reported and left off the schedule."""
    seen = []
    for session in schedule.due(now):
        verdict = liveness.verdict(session, now, INTERVAL, SLOW)
        seen.append((session.client_id, verdict))
        if verdict == liveness.PING:
            session.last_ping = now
        if verdict is None or verdict == liveness.PING:
            schedule.track(session)
    return seen


def test_a_session_comes_due_once_per_heartbeat_interval():
    session = Session("a", RecordingSink())
    start = session.last_ping
    schedule = liveness.Schedule(INTERVAL)
    schedule.track(session)
    assert _sweep(schedule, start + INTERVAL - 0.5) == []
    assert _sweep(schedule, start + INTERVAL) == [("a", liveness.PING)]
    session.last_heard = start + INTERVAL + 0.1  # it answered
    for second in range(1, 30):
        assert _sweep(schedule, start + INTERVAL + second) == []
    assert _sweep(schedule, start + 2 * INTERVAL) == [("a", liveness.PING)]


def test_a_silent_session_is_due_when_its_second_ping_goes_unanswered_not_later():
    session = Session("a", RecordingSink())
    start = session.last_heard
    schedule = liveness.Schedule(INTERVAL)
    schedule.track(session)
    verdicts = {}
    for second in range(1, 100):
        for _, verdict in _sweep(schedule, start + second):
            if verdict is not None:  # a look that finds nothing to do is allowed
                verdicts[second] = verdict
    # Pinged at 30 and 60, closed the second the silence passed two intervals and one.
    assert verdicts == {30: liveness.PING, 60: liveness.PING, 62: (1001, "missed heartbeats")}


def test_a_forgotten_session_never_comes_due_and_is_not_held():
    schedule = liveness.Schedule(INTERVAL)
    sessions = [Session(f"s{n}", RecordingSink()) for n in range(100)]
    for session in sessions:
        schedule.track(session)
    for session in sessions[:90]:
        schedule.forget(session)
    assert len(schedule) == 10
    assert len(schedule._heap) < 4 * 90  # rebuilt once the dead outnumbered the live
    due = schedule.due(sessions[-1].last_ping + INTERVAL)
    assert sorted(s.client_id for s in due) == [f"s{n}" for n in range(90, 100)]
    assert len(schedule) == 0  # taken off until tracked again


@pytest.mark.asyncio
async def test_a_write_waiting_on_its_peer_puts_the_session_in_the_waiting_set():
    waiting: set[Session] = set()
    sink = RecordingSink()
    sink.gate.clear()  # the peer does not read
    session = Session("a", sink, waiting=waiting)
    session.send({"type": "hello"})
    await asyncio.wait_for(_until(lambda: waiting == {session}), 5)
    assert session.blocked_since is not None
    assert liveness.verdict(session, session.blocked_since + SLOW + 1, INTERVAL, SLOW) \
        == (1013, "slow consumer")
    sink.gate.set()
    await session.flush(5)
    assert waiting == set() and session.blocked_since is None
    assert sink.frames == [{"type": "hello"}]


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0)
