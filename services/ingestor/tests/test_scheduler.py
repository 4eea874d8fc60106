"""Due-ness, priority and staleness of symbols (pure logic, explicit clock values)."""

from __future__ import annotations

from tickwire.ingestor.scheduler import Scheduler

POLL, FRESH = 2.0, 10.0
T = 1_000_000.0


def scheduler(owned: dict[str, int], fetched: dict[str, float | None]) -> Scheduler:
    s = Scheduler(POLL, FRESH)
    s.sync(owned)
    for symbol in owned:
        s.load(symbol, fetched.get(symbol), stale=False)
    return s


def test_sync_reports_added_and_removed_and_updates_subscribers():
    s = Scheduler(POLL, FRESH)
    assert s.sync({"A": 1, "B": 2}) == (["A", "B"], [])
    assert s.sync({"B": 5, "C": 1}) == (["C"], ["A"])
    assert s.symbols["B"].subscribers == 5


def test_nothing_is_due_before_its_shared_state_is_loaded():
    s = Scheduler(POLL, FRESH)
    s.sync({"A": 1})
    assert s.unloaded() == ["A"] and s.due(T) == []
    s.load("A", None, stale=False)
    assert s.unloaded() == [] and s.due(T) == ["A"]


def test_a_takeover_resumes_the_previous_owners_cadence():
    # fetched by the previous owner 0.5 s ago: fresh, not refetched until a poll interval passed
    s = scheduler({"A": 1}, {"A": T - 0.5})
    assert s.due(T) == [] and s.due(T + 1.4) == []
    assert s.due(T + 1.5) == ["A"]


def test_nearly_due_symbols_join_a_starting_round():
    s = scheduler({"A": 1, "NEW": 1, "HALF": 1, "YOUNG": 1},
                  {"A": T - 0.5, "HALF": T - 1.0, "YOUNG": T - 0.9})
    # NEW is due; HALF (half an interval old) joins it; A and YOUNG stay on their cadence.
    assert s.due(T) == ["NEW", "HALF"]
    s.fetched("NEW", T)
    s.fetched("HALF", T)
    assert s.due(T + 1.0) == []  # nothing due: no round, so no one joins early
    # YOUNG is due; everyone else is at least half an interval old and joins: one cadence.
    assert s.due(T + 1.1) == ["YOUNG", "A", "HALF", "NEW"]


def test_busy_symbols_are_skipped():
    s = scheduler({"A": 1, "B": 1}, {})
    assert s.due(T, busy={"A"}) == ["B"]


def test_never_fetched_first_then_subscribers_times_age():
    s = scheduler({"HOT": 50, "WARM": 10, "NEW1": 1, "NEW9": 9, "QUIET": 1},
                  {"HOT": T - 2.0, "WARM": T - 4.0, "QUIET": T - 300.0})
    # never fetched: by subscribers; then HOT 50×1 = 50 < QUIET 1×150 = 150 > WARM 10×2 = 20
    assert s.due(T) == ["NEW9", "NEW1", "QUIET", "HOT", "WARM"]


def test_most_subscribers_win_at_equal_age():
    s = scheduler({"A": 3, "B": 7, "C": 5}, {"A": T - 4, "B": T - 4, "C": T - 4})
    assert s.due(T) == ["B", "C", "A"]


def test_a_failed_attempt_waits_a_poll_interval():
    s = scheduler({"A": 1, "B": 1}, {"B": T - 1.5})
    assert s.failed("A", T) is True  # never fetched: stale at once
    assert s.due(T + 0.5) == ["B"]  # B is due; A, failed half an interval ago, does not join
    s.fetched("B", T + 0.5)
    assert s.due(T + 1.9) == []
    assert s.due(T + 2.0) == ["A", "B"]  # B joins A's retry


def test_stale_once_data_is_older_than_the_freshness_window_and_recovery_once():
    s = scheduler({"A": 1}, {"A": T})
    assert s.failed("A", T + 4) is False     # failing, but the data is still fresh
    assert s.failed("A", T + 9.9) is False
    assert s.failed("A", T + 10) is True     # now stale: announce once
    assert s.failed("A", T + 12) is False    # still stale: no second notice
    assert s.stale_symbols() == ["A"]
    assert s.fetched("A", T + 14) is True    # recovered: announce once
    assert s.fetched("A", T + 16) is False
    assert s.stale_symbols() == []


def test_stale_flag_loaded_from_redis_is_kept_for_the_recovery_notice():
    s = Scheduler(POLL, FRESH)
    s.sync({"A": 1})
    s.load("A", T - 60, stale=True)
    assert s.failed("A", T) is False  # already announced by the previous owner
    assert s.fetched("A", T + 2) is True


def test_unflag_and_postpone():
    s = scheduler({"A": 1}, {})
    assert s.failed("A", T) is True
    s.unflag(["A"])
    assert s.failed("A", T + 2) is True
    s.postpone("A", T + 5)
    assert s.due(T + 6) == [] and s.due(T + 7) == ["A"]
