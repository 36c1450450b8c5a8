"""Following a clock source: parsing its answer, extrapolating between reads, never going back."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.core.clock_follow import ClockAnswerError, FollowedTime, SourceTime, parse_source_time
from gateway.runtime.clock import MIN_REAL_WAIT_S, InProcessClock, Timebase

T0 = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(("body", "expected"), [
    ({"now": "2026-07-15T03:00:00+00:00", "speed": 120}, SourceTime(T0, 120.0)),
    ({"now": "2026-07-15T05:00:00+02:00", "speed": 0}, SourceTime(T0, 0.0)),
    ({"now": "2026-07-15T03:00:00+00:00", "speed": 1.5, "extra": 1}, SourceTime(T0, 1.5)),
])
def test_a_clock_answer_is_read(body: Any, expected: SourceTime) -> None:
    assert parse_source_time(body) == expected


@pytest.mark.parametrize(("body", "message"), [
    ([], "not a JSON object"),
    ({"speed": 1}, "no 'now' string"),
    ({"now": 5, "speed": 1}, "no 'now' string"),
    ({"now": "yesterday", "speed": 1}, "not a date-time"),
    ({"now": "2026-07-15T03:00:00", "speed": 1}, "no UTC offset"),
    ({"now": "2026-07-15T03:00:00Z"}, "no numeric 'speed'"),
    ({"now": "2026-07-15T03:00:00Z", "speed": "60"}, "no numeric 'speed'"),
    ({"now": "2026-07-15T03:00:00Z", "speed": True}, "no numeric 'speed'"),
    ({"now": "2026-07-15T03:00:00Z", "speed": -1}, "outside 0..100000"),
    ({"now": "2026-07-15T03:00:00Z", "speed": math.inf}, "outside"),
    ({"now": "2026-07-15T03:00:00Z", "speed": 1e9}, "outside"),
])
def test_a_clock_answer_that_cannot_be_used_is_refused(body: Any, message: str) -> None:
    with pytest.raises(ClockAnswerError, match=message):
        parse_source_time(body)


def test_time_is_extrapolated_from_the_midpoint_of_the_read() -> None:
    followed = FollowedTime()
    assert not followed.anchored
    sync = followed.observe(SourceTime(T0, 60.0), sent_mono=100.0, received_mono=100.2)
    assert (sync.offset_s, sync.speed_changed, sync.held_s) == (0.0, False, 0.0)
    assert followed.speed == 60.0
    assert followed.at(100.1) == T0  # answered halfway through the round trip
    assert followed.at(101.1) == at(60)
    assert followed.at(111.1) == at(660)


# (source time at the second read, its speed) -> (offset_s, speed_changed, held_s, time 1 s later)
@pytest.mark.parametrize(("second", "expected"), [
    (SourceTime(at(60), 60.0), (0.0, False, 0.0, at(120))),      # on track
    (SourceTime(at(63), 60.0), (3.0, False, 0.0, at(123))),      # source ahead: jump forward
    (SourceTime(at(60), 600.0), (0.0, True, 0.0, at(660))),      # speed change
    (SourceTime(at(60), 0.0), (0.0, True, 0.0, at(60))),         # frozen
])
def test_each_read_re_anchors(second: SourceTime, expected: tuple[Any, ...]) -> None:
    followed = FollowedTime()
    followed.observe(SourceTime(T0, 60.0), 0.0, 0.0)
    sync = followed.observe(second, 1.0, 1.0)
    assert (sync.offset_s, sync.speed_changed, sync.held_s) == expected[:3]
    assert followed.at(2.0) == expected[3]


def test_time_never_goes_backwards_when_the_source_is_behind() -> None:
    followed = FollowedTime()
    followed.observe(SourceTime(T0, 60.0), 0.0, 0.0)
    assert followed.at(2.0) == at(120)  # handed out
    # the source says it was only at +90 s at mono 2: 30 domain s behind what was handed out
    sync = followed.observe(SourceTime(at(90), 60.0), 2.0, 2.0)
    assert sync.offset_s == -30.0
    assert sync.held_s == 30.0
    assert followed.at(2.0) == at(120)  # held, not back
    assert followed.at(2.25) == at(120)  # the source is at +105 s: still held
    assert followed.at(3.0) == at(150)  # passed: runs on from the source's time


def test_a_read_answered_before_it_was_sent_is_refused() -> None:
    followed = FollowedTime()
    with pytest.raises(ValueError, match="before it was sent"):
        followed.observe(SourceTime(T0, 1.0), 2.0, 1.0)


def test_time_before_the_first_read_is_unknown() -> None:
    with pytest.raises(RuntimeError, match="not been read"):
        FollowedTime().at(0.0)


@pytest.mark.parametrize(("speed", "domain_s", "spans"), [
    (1.0, 30.0, 30.0),
    (120.0, 30.0, 30.0),
    (1000.0, 30.0, MIN_REAL_WAIT_S * 1000),  # a pass cannot come faster than the real floor
    (0.0, 30.0, 30.0),
])
def test_a_domain_wait_spans_at_least_the_real_floor(speed: float, domain_s: float,
                                                     spans: float) -> None:
    timebase = InProcessClock(lambda: T0, lambda: speed)
    assert timebase.domain_span_s(domain_s) == pytest.approx(spans)


class FakeSimClock:
    """A clock at ``speed`` over the real monotonic time, like the simulator's."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._anchor = T0
        self._mono = asyncio.get_running_loop().time()

    def now(self) -> datetime:
        mono = asyncio.get_running_loop().time()
        return self._anchor + timedelta(seconds=self.speed * (mono - self._mono))

    def set_speed(self, speed: float) -> None:
        self._anchor, self._mono = self.now(), asyncio.get_running_loop().time()
        self.speed = speed


async def test_a_domain_wait_ends_after_its_domain_time_at_speed() -> None:
    sim = FakeSimClock(600.0)
    timebase = InProcessClock(sim.now, lambda: sim.speed)
    start = timebase.now()
    async with asyncio.timeout(5):  # 120 domain s at 600x: 0.2 s real
        assert await timebase.wait(None, 120.0) is False
    assert (timebase.now() - start).total_seconds() >= 120.0


async def test_a_domain_wait_sees_a_speed_change() -> None:
    sim = FakeSimClock(1.0)
    timebase = InProcessClock(sim.now, lambda: sim.speed)
    waiting = asyncio.create_task(timebase.wait(None, 600.0))  # ten real minutes at speed 1
    await asyncio.sleep(0.05)
    sim.set_speed(6000.0)
    async with asyncio.timeout(5):
        assert await waiting is False


async def test_a_domain_wait_ends_when_its_event_is_set() -> None:
    timebase = InProcessClock(FakeSimClock(0.0).now, lambda: 0.0)  # frozen: only the event ends it
    event = asyncio.Event()
    waiting = asyncio.create_task(timebase.wait(event, 1.0))
    await asyncio.sleep(0.05)
    event.set()
    async with asyncio.timeout(5):
        assert await waiting is True


async def test_the_wall_timebase_waits_in_real_seconds() -> None:
    fixed = Timebase(lambda: T0)  # a frozen test clock still lets periodic waits end
    async with asyncio.timeout(5):
        assert await fixed.wait(None, 0.05) is False
    assert fixed.speed == 1.0
    assert not fixed.follows
    assert fixed.status().source == "wall"


def test_the_in_process_clock_never_goes_backwards() -> None:
    times = iter([at(10), at(5), at(20)])
    timebase = InProcessClock(lambda: next(times), lambda: 1.0)
    assert [timebase.now() for _ in range(3)] == [at(10), at(10), at(20)]
