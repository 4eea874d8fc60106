"""What /readyz says, in order of importance."""

from tickwire.registry.health import Health


def ready_health() -> Health:
    health = Health()
    health.mark("redis", True)
    health.mark("kafka", True)
    health.joined = True
    return health


def test_ready_when_both_answer_and_the_group_is_joined():
    assert ready_health().reason() is None


def test_not_ready_until_both_dependencies_answered():
    health = Health()
    health.joined = True
    assert health.reason() == "redis unavailable"
    health.mark("redis", True)
    assert health.reason() == "kafka unavailable"


def test_not_ready_while_joining_the_group():
    health = ready_health()
    health.joined = False
    assert health.reason() == "joining the consumer group"


def test_draining_wins():
    health = ready_health()
    health.mark("redis", False)
    health.draining = True
    assert health.reason() == "draining"
