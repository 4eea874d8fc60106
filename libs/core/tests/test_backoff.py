from tickwire.core.backoff import backoff_delay


def test_the_schedule_doubles_to_its_cap_with_the_chosen_jitter():
    steps = [backoff_delay(n, 0.1, 5.0, "none") for n in range(8)]
    assert steps == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff_delay(3, 0.1, 5.0, "full", uniform=lambda lo, hi: hi) == 0.8
    assert backoff_delay(3, 0.1, 5.0, "full", uniform=lambda lo, hi: lo) == 0.0
    assert backoff_delay(3, 0.1, 5.0, "equal", uniform=lambda lo, hi: lo) == 0.4
    assert backoff_delay(10_000, 1.0, 30.0, "none") == 30.0  # no overflow
