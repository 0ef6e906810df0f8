"""The replay floor (pipeline/domain/replay.py): per partition, from the batches before, and the same for a
re-run batch."""

from pipeline.domain.replay import ReplayClock, advanced, replay_floors

S = 1_000_000  # µs


def test_no_floor_for_a_partition_not_seen_yet():
    assert replay_floors(None, 0, horizon_s=600) == {}
    assert replay_floors(advanced(None, 0, {0: 1_000 * S}), 1, horizon_s=600) == {0: 400 * S}


def test_the_floor_is_the_partitions_newest_database_time_before_the_batch_minus_the_horizon():
    clock = advanced(None, 0, {0: 1_000 * S, 1: 100 * S})  # partition 1 lags far behind: it has its own floor
    assert replay_floors(clock, 1, horizon_s=600) == {0: 400 * S, 1: -500 * S}
    clock = advanced(clock, 1, {0: 900 * S})  # a batch behind moves nothing back
    assert replay_floors(clock, 2, horizon_s=600) == {0: 400 * S, 1: -500 * S}
    clock = advanced(clock, 2, {0: 2_000 * S, 1: 200 * S})
    assert replay_floors(clock, 3, horizon_s=600) == {0: 1_400 * S, 1: -400 * S}


def test_a_batch_run_again_gets_the_floor_its_first_run_had():
    clock = advanced(advanced(None, 0, {0: 1_000 * S}), 1, {0: 5_000 * S})
    assert clock == ReplayClock(1, {0: 1_000 * S}, {0: 5_000 * S})
    assert replay_floors(clock, 1, horizon_s=600) == {0: 400 * S}  # batch 1 again, after a crash
    again = advanced(clock, 1, {0: 5_000 * S})
    assert again == clock
    assert replay_floors(again, 2, horizon_s=600) == {0: 4_400 * S}
