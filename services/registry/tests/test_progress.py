"""When a partition counts as caught up, and up to when the whole topic has been read."""

from tickwire.registry.progress import PartitionProgress, caught_up_until, partition_progress


def test_a_partition_is_caught_up_when_everything_fetched_is_applied():
    assert partition_progress(3, position=42, highwater=42, polled_at=1_000) == \
        PartitionProgress(3, lag=0, caught_up_at=1_000)


def test_a_partition_behind_its_high_watermark_is_not_caught_up():
    assert partition_progress(3, position=40, highwater=42, polled_at=1_000) == \
        PartitionProgress(3, lag=2, caught_up_at=None)


def test_the_topic_is_read_up_to_its_slowest_partition():
    assert caught_up_until({0: 5_000, 1: 4_000, 2: 6_000}, [0, 1, 2]) == 4_000


def test_partitions_outside_the_topic_do_not_count():
    assert caught_up_until({0: 5_000, 1: 4_000, 7: 1}, [0, 1]) == 4_000


def test_a_partition_never_seen_caught_up_means_unknown():
    assert caught_up_until({0: 5_000}, [0, 1]) is None


def test_no_partitions_known_means_unknown():
    assert caught_up_until({0: 5_000}, []) is None
