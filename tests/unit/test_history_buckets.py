"""Five-minute buckets: alignment, and the accumulator that fills them from samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.core.history import Bucket, BucketAccumulator, bucket_start
from tests.samples import power_sample as sample


def test_bucket_start_aligns_to_utc_five_minutes() -> None:
    at = datetime(2024, 6, 1, 14, 7, 59, tzinfo=ZoneInfo("Asia/Kathmandu"))  # +05:45
    assert bucket_start(at) == datetime(2024, 6, 1, 8, 20, tzinfo=UTC)


def test_accumulator_emits_completed_buckets() -> None:
    acc = BucketAccumulator()
    start = datetime(2024, 6, 1, 0, 2, 30, tzinfo=UTC)
    emitted: list[Bucket] = []
    for i in range(73):  # every 10 s up to 00:14:30 at 3.6 kW of solar to the home
        emitted += acc.add(sample(start + timedelta(seconds=10 * i), solar=3600, grid=0))
    assert [b.start.minute for b in emitted] == [0, 5]
    assert emitted[0].energy.solar_to_home == pytest.approx(150.0)
    assert emitted[1].energy.solar_to_home == pytest.approx(300.0)
    (open_bucket,) = acc.open_buckets()
    assert open_bucket.start.minute == 10
    assert open_bucket.energy.solar_to_home == pytest.approx(270.0)
    assert all(b.start.tzinfo is UTC for b in emitted)


def test_accumulator_splits_an_interval_across_a_boundary_exactly() -> None:
    acc = BucketAccumulator()
    acc.add(sample(datetime(2024, 6, 1, 0, 4, tzinfo=UTC), grid=6000))
    done = acc.add(sample(datetime(2024, 6, 1, 0, 6, tzinfo=UTC), grid=0))
    assert [(b.start.minute, b.energy.grid_to_home) for b in done] == [(0, 100.0)]
    assert [(b.start.minute, b.energy.grid_to_home) for b in acc.flush()] == [(5, 100.0)]
    assert acc.open_buckets() == []


def test_accumulator_leaves_gaps_empty_and_ignores_stale_samples() -> None:
    acc = BucketAccumulator()
    acc.add(sample(datetime(2024, 6, 1, 0, 0, tzinfo=UTC), grid=1200))
    done = acc.add(sample(datetime(2024, 6, 1, 0, 1, tzinfo=UTC), grid=1200))
    assert done == []
    done = acc.add(sample(datetime(2024, 6, 1, 0, 20, tzinfo=UTC), grid=1200))  # 19 min gap
    assert [(b.start.minute, b.energy.grid_to_home) for b in done] == [(0, 20.0)]
    assert acc.add(sample(datetime(2024, 6, 1, 0, 19, tzinfo=UTC), grid=9999)) == []
    assert acc.last_sample is not None
    assert acc.last_sample.taken_at.minute == 20


def test_accumulator_flush_and_remainder_sum_to_the_whole() -> None:
    acc = BucketAccumulator()
    t = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
    acc.add(sample(t, solar=1200, grid=0))
    acc.add(sample(t + timedelta(minutes=2), solar=1200))
    first = acc.flush()
    later = acc.add(sample(t + timedelta(minutes=5), solar=1200))
    total = sum(b.energy.solar_to_home for b in first + later)
    assert total == pytest.approx(100.0)
    assert {b.start for b in first + later} == {t}


def test_accumulator_rejects_bucket_sizes_that_do_not_tile_an_hour() -> None:
    with pytest.raises(ValueError, match="bucket size"):
        BucketAccumulator(size=timedelta(minutes=7))
