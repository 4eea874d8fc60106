"""Which outbox entries may be removed after a batch of sends."""

from tickwire.registry.announcer import acknowledged_prefix


def test_every_entry_acknowledged():
    assert acknowledged_prefix(["ok", "ok", "ok"]) == 3


def test_entries_after_the_first_failure_stay_even_if_acknowledged():
    assert acknowledged_prefix(["ok", TimeoutError(), "ok"]) == 1


def test_nothing_sent():
    assert acknowledged_prefix([]) == 0
    assert acknowledged_prefix([ConnectionError()]) == 0
