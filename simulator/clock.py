"""The simulated clock: start + speed x real elapsed time, rebased whenever the speed changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta


class SimClock:
    """Simulated time that can run faster (or slower) than real time.

    Simulated time = anchor + speed x (monotonic now - monotonic anchor). Changing the speed rebases
    the anchor so simulated time never jumps; `advance` shifts it forward by hand (manual stepping).

    Args:
        start: Simulated time at construction (timezone-aware).
        speed: Simulated seconds per real second (>= 0; 0 freezes the clock).
        monotonic: Real clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        start: datetime,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._monotonic = monotonic
        self._anchor_sim = start
        self._anchor_real = monotonic()
        self._speed = float(speed)

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def now(self) -> datetime:
        """Current simulated time (timezone-aware)."""
        elapsed = self._monotonic() - self._anchor_real
        return self._anchor_sim + timedelta(seconds=self._speed * elapsed)

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, keeping simulated time continuous."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._rebase()
        self._speed = float(speed)

    def advance(self, dt_s: float) -> None:
        """Jump simulated time forward by dt_s simulated seconds."""
        if dt_s < 0:
            raise ValueError("dt_s must be >= 0")
        self._rebase()
        self._anchor_sim += timedelta(seconds=dt_s)

    def _rebase(self) -> None:
        now_real = self._monotonic()
        self._anchor_sim += timedelta(seconds=self._speed * (now_real - self._anchor_real))
        self._anchor_real = now_real
