from tickwire.edge.limits import AddressAdmission, Throttle, TokenBucket


def test_token_bucket_bursts_then_refills_at_its_rate():
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.05)
    assert bucket.take(0.11)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_address_admission_caps_open_connections_and_rate():
    admission = AddressAdmission(max_connections=2, rate=1, burst=3)
    assert admission.admit("a", 0) is None and admission.admit("a", 0) is None
    assert "too many" in admission.admit("a", 0)
    assert admission.admit("b", 0) is None  # other addresses are unaffected
    admission.release("a")
    assert admission.admit("a", 0) is None
    admission.release("a")
    assert "too fast" in admission.admit("a", 0)  # a's burst of 3 is spent
    assert admission.admit("a", 1.0) is None


def test_idle_addresses_are_forgotten():
    admission = AddressAdmission(max_connections=5, rate=1, burst=2)
    admission.admit("a", 0)
    admission.release("a")
    admission.forget_idle(0.5)
    assert "a" in admission.buckets
    admission.forget_idle(10)
    assert not admission.buckets


def test_throttle_spaces_sends_per_symbol():
    throttle = Throttle()
    assert not throttle
    throttle.set("A", 2.0)
    assert throttle and throttle.limits("A") and not throttle.limits("B")
    assert throttle.due_at("A") == 0.0
    throttle.sent("A", 10.0)
    assert throttle.due_at("A") == 10.5
    throttle.sent("B", 10.0)  # unthrottled symbols are always due
    assert throttle.due_at("B") == 0.0
    throttle.clear("A")
    assert not throttle
