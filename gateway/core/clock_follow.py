"""Following another clock: its answers parsed, its time extrapolated between reads, never backwards."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

#: A source's speed beyond this is refused (the simulator's own limit).
MAX_SPEED: Final = 100_000.0


class ClockAnswerError(ValueError):
    """A clock source's answer that cannot be used; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class SourceTime:
    """What a clock source said: its time then and how fast it runs (domain s per real s)."""

    now: datetime
    speed: float


def parse_source_time(body: Any) -> SourceTime:
    """A ``GET /clock`` answer (``{"now": RFC 3339 with offset, "speed": number}``) as a ``SourceTime``.

    Raises:
        ClockAnswerError: naming what is wrong (not an object, a missing or naive ``now``, a ``speed``
            that is not a finite number in 0..``MAX_SPEED``).
    """
    if not isinstance(body, dict):
        raise ClockAnswerError("the clock answer is not a JSON object")
    raw_now, raw_speed = body.get("now"), body.get("speed")
    if not isinstance(raw_now, str):
        raise ClockAnswerError("the clock answer has no 'now' string")
    try:
        now = datetime.fromisoformat(raw_now)
    except ValueError:
        raise ClockAnswerError(f"the clock answer's 'now' is not a date-time: {raw_now[:40]!r}") from None
    if now.utcoffset() is None:
        raise ClockAnswerError("the clock answer's 'now' has no UTC offset")
    if isinstance(raw_speed, bool) or not isinstance(raw_speed, int | float):
        raise ClockAnswerError("the clock answer has no numeric 'speed'")
    speed = float(raw_speed)
    if not math.isfinite(speed) or not 0 <= speed <= MAX_SPEED:
        raise ClockAnswerError(f"the clock answer's speed {raw_speed!r} is outside 0..{MAX_SPEED:g}")
    return SourceTime(now, speed)


@dataclass(frozen=True, slots=True)
class Sync:
    """What one read of the source changed.

    ``offset_s``: the source's time minus the local estimate at the read, in domain seconds (0 on
    the first read); ``speed_changed``: the source runs at another speed than before;
    ``held_s``: domain seconds the local time must hold still because the source is behind what
    was already handed out (never negative; 0 when the source is ahead or level).
    """

    offset_s: float
    speed_changed: bool
    held_s: float


class FollowedTime:
    """Domain time that follows a source: anchor + speed x (monotonic now - monotonic anchor).

    Each read of the source re-anchors it; the read is taken to be answered at the midpoint of the
    request (half the round trip each way). Time handed out never goes backwards: when a read puts
    the source behind what ``at`` already returned, ``at`` holds that value until the source
    passes it. Monotonic time is an argument: no clock is read here.
    """

    def __init__(self) -> None:
        self._anchor: datetime | None = None
        self._anchor_mono = 0.0
        self._speed = 1.0
        self._floor: datetime | None = None  # the latest time handed out

    @property
    def anchored(self) -> bool:
        """Whether the source has answered at least once."""
        return self._anchor is not None

    @property
    def speed(self) -> float:
        """Domain seconds per real second, as the source last said (1 before it said anything)."""
        return self._speed

    def observe(self, source: SourceTime, sent_mono: float, received_mono: float) -> Sync:
        """Re-anchor on a read sent at ``sent_mono`` and answered at ``received_mono``."""
        if received_mono < sent_mono:
            raise ValueError("a read cannot be answered before it was sent")
        mid = (sent_mono + received_mono) / 2
        if self._anchor is None:
            self._set(source, mid)
            return Sync(offset_s=0.0, speed_changed=False, held_s=0.0)
        estimate = self._extrapolate(mid)
        offset_s = (source.now - estimate).total_seconds()
        speed_changed = source.speed != self._speed
        self._set(source, mid)
        held_s = 0.0
        if self._floor is not None:
            held_s = max(0.0, (self._floor - self._extrapolate(received_mono)).total_seconds())
        return Sync(offset_s=offset_s, speed_changed=speed_changed, held_s=held_s)

    def at(self, mono: float) -> datetime:
        """Domain time at monotonic ``mono``: extrapolated, never before a time already returned.

        Raises:
            RuntimeError: before the first ``observe``.
        """
        if self._anchor is None:
            raise RuntimeError("the followed clock has not been read yet")
        now = self._extrapolate(mono)
        if self._floor is not None and now < self._floor:
            return self._floor
        self._floor = now
        return now

    def _set(self, source: SourceTime, mono: float) -> None:
        self._anchor, self._anchor_mono, self._speed = source.now, mono, source.speed

    def _extrapolate(self, mono: float) -> datetime:
        assert self._anchor is not None  # noqa: S101 - callers check
        return self._anchor + timedelta(seconds=self._speed * (mono - self._anchor_mono))
