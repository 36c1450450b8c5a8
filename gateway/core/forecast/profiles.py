"""Learned daily profiles: the site's load per weekday and time of day, and its PV correction."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

LOAD_LEARNING_RATE: Final = 0.3
"""Weight of the newest day in a slot's running mean (about the last 5-6 days count)."""
WEEKDAY_LEARNING_RATE: Final = 0.5
"""Weight of the newest same-weekday day (weeks are few; the newest says most)."""
WEEKDAY_SHARE: Final = 0.5
"""Share of the weekday profile in the forecast once that weekday was seen twice."""
PV_LEARNING_RATE: Final = 0.3
"""Weight of the newest day in the PV correction (weather changes from day to day)."""
NOWCAST_MAX_WEIGHT: Final = 0.8
"""At most this weight for what today delivered so far (reached after 40 % of the day's sun)."""
DEFAULT_DAILY_KWH: Final = 10.0
"""Day-one household consumption, before the site's own history says otherwise."""


def default_load_w(hour: float, daily_kwh: float = DEFAULT_DAILY_KWH) -> float:
    """A typical home's demand at local ``hour``: a base, a morning and a larger evening peak."""
    morning = math.exp(-0.5 * ((hour - 7.5) / 1.2) ** 2)
    evening = math.exp(-0.5 * ((hour - 19) / 1.8) ** 2)
    shape = 1 + 1.5 * morning + 2.5 * evening
    # The shape integrates to 24 + 1.5 * 1.2 * sqrt(2 pi) + 2.5 * 1.8 * sqrt(2 pi) over a day.
    area_h = 24 + (1.5 * 1.2 + 2.5 * 1.8) * math.sqrt(2 * math.pi)
    return daily_kwh * 1000 / area_h * shape


def _smooth(values: Sequence[float]) -> list[float]:
    n = len(values)
    return [0.25 * values[i - 1] + 0.5 * values[i] + 0.25 * values[(i + 1) % n] for i in range(n)]


def no_default(_hour: float) -> float:
    """Day-one profile of something the site has not shown yet (PV without a location)."""
    return 0.0


@dataclass(slots=True)
class DailyProfile:
    """Expected mean power per weekday and time-of-day slot, learned from whole days.

    Used for the home's load (and for PV when the site has no location for a clear-sky model).

    Attributes:
        slots: slots per day (96 for 15 minutes).
        default: day-one W at a local hour.
    """

    slots: int = 96
    default: Callable[[float], float] = default_load_w
    _all: list[float] | None = None
    _weekday: dict[int, list[float]] = field(default_factory=dict)
    _weekday_days: dict[int, int] = field(default_factory=dict)
    _cache: dict[int, list[float]] = field(default_factory=dict)
    days: int = 0

    def learn_day(self, weekday: int, mean_w: Sequence[float]) -> None:
        """Fold one finished local day (mean W per slot; NaN = no data) into the profile."""
        if len(mean_w) != self.slots:
            raise ValueError(f"a day has {self.slots} slots, got {len(mean_w)}")
        fallback = self.profile(weekday)
        day = [v if math.isfinite(v) and v >= 0 else f for v, f in zip(mean_w, fallback, strict=True)]
        self._all = day if self._all is None else _blend(self._all, day, LOAD_LEARNING_RATE)
        seen = self._weekday.get(weekday)
        self._weekday[weekday] = day if seen is None else _blend(seen, day, WEEKDAY_LEARNING_RATE)
        self._weekday_days[weekday] = self._weekday_days.get(weekday, 0) + 1
        self.days += 1
        self._cache.clear()

    def profile(self, weekday: int) -> list[float]:
        """Expected mean W per slot of a ``weekday`` (0 = Monday), smoothed."""
        cached = self._cache.get(weekday)
        if cached is None:
            cached = self._cache[weekday] = self._profile(weekday)
        return cached

    def _profile(self, weekday: int) -> list[float]:
        if self._all is None:
            return [self.default((i + 0.5) * 24 / self.slots) for i in range(self.slots)]
        base = self._all
        same = self._weekday.get(weekday)
        if same is not None and self._weekday_days.get(weekday, 0) >= 2:
            base = _blend(base, same, WEEKDAY_SHARE)
        return _smooth(base)

    def at(self, local: datetime) -> float:
        """Expected demand in the slot holding site-local ``local``."""
        slot = (local.hour * 60 + local.minute) * self.slots // 1440
        return self.profile(local.weekday())[slot]

    def state(self) -> dict[str, Any]:
        """What was learned, JSON-ready (``restore`` reads it back)."""
        return {"slots": self.slots, "days": self.days, "all": self._all,
                "weekday": {str(k): v for k, v in self._weekday.items()},
                "weekday_days": {str(k): v for k, v in self._weekday_days.items()}}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back what ``state`` wrote; every value checked first (ValueError names the bad one)."""
        if state.get("slots") != self.slots:
            raise ValueError(f"not a profile of {self.slots} slots")
        weekday, weekday_days = state.get("weekday"), state.get("weekday_days")
        if not isinstance(weekday, Mapping) or not isinstance(weekday_days, Mapping):
            raise ValueError("weekday profiles missing")  # noqa: TRY004 - one error for bad state
        raw_all = state.get("all")
        days = _count(state.get("days"), "days")
        all_days = None if raw_all is None else _series(raw_all, self.slots, "all")
        by_day = {_weekday(k): _series(v, self.slots, f"weekday.{k}") for k, v in weekday.items()}
        counts = {_weekday(k): _count(v, f"weekday_days.{k}") for k, v in weekday_days.items()}
        self.days, self._all, self._weekday, self._weekday_days = days, all_days, by_day, counts
        self._cache.clear()


def _weekday(key: object) -> int:
    if not isinstance(key, str) or key not in {"0", "1", "2", "3", "4", "5", "6"}:
        raise ValueError(f"weekday {key!r} is not 0..6")
    return int(key)


def _series(values: object, slots: int, name: str) -> list[float]:
    if not isinstance(values, list) or len(values) != slots:
        raise ValueError(f"{name}: not {slots} numbers")
    return [_amount(v, name) for v in values]


def _amount(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name}: {value!r} is not a finite number >= 0")
    return float(value)


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: {value!r} is not a count")
    return value


def _blend(old: Sequence[float], new: Sequence[float], rate: float) -> list[float]:
    return [(1 - rate) * o + rate * v for o, v in zip(old, new, strict=True)]


@dataclass(slots=True)
class PvCorrection:
    """How much of its clear-sky potential the array delivers, learned day by day.

    It absorbs weather (the recent days' cloudiness), shading, orientation and a PV size that
    is only roughly known. Starts at ``initial`` (a fair sky) until the first day is learned.
    Within a day, what the array has delivered so far moves the rest of that day's forecast
    (a nowcast): after a grey morning the afternoon is not planned as sunny.
    """

    initial: float = 0.7
    value: float | None = None
    days: int = 0
    today: date | None = None
    today_measured_wh: float = 0.0
    today_clear_wh: float = 0.0
    last_day_clear_wh: float = 0.0

    def learn_day(self, measured_wh: float, clear_sky_wh: float) -> None:
        """Fold one finished day's measured energy and its clear-sky potential into the ratio."""
        if clear_sky_wh <= 0 or not math.isfinite(measured_wh) or measured_wh < 0:
            return
        ratio = min(1.3, measured_wh / clear_sky_wh)
        old = ratio if self.value is None else self.value
        self.value = (1 - PV_LEARNING_RATE) * old + PV_LEARNING_RATE * ratio
        self.days += 1
        self.last_day_clear_wh = clear_sky_wh

    def observe(self, day: date, measured_wh: float, clear_sky_wh: float) -> None:
        """Add energy measured on local ``day`` and its clear-sky potential; a new day first
        learns the one before."""
        if day != self.today:
            if self.today is not None:
                self.learn_day(self.today_measured_wh, self.today_clear_wh)
            self.today, self.today_measured_wh, self.today_clear_wh = day, 0.0, 0.0
        if math.isfinite(measured_wh) and measured_wh >= 0 and clear_sky_wh >= 0:
            self.today_measured_wh += measured_wh
            self.today_clear_wh += clear_sky_wh

    @property
    def factor(self) -> float:
        """The correction learned from whole days."""
        return self.initial if self.value is None else self.value

    def factor_on(self, day: date) -> float:
        """The correction for a step on local ``day``: today's blends in what today delivered."""
        if day != self.today or self.today_clear_wh <= 0 or self.last_day_clear_wh <= 0:
            return self.factor
        seen = min(NOWCAST_MAX_WEIGHT, 2 * self.today_clear_wh / self.last_day_clear_wh)
        today = min(1.3, self.today_measured_wh / self.today_clear_wh)
        return (1 - seen) * self.factor + seen * today

    def state(self) -> dict[str, Any]:
        """What was learned (today's running sums too), JSON-ready (``restore`` reads it back)."""
        return {"initial": self.initial, "value": self.value, "days": self.days,
                "today": None if self.today is None else self.today.isoformat(),
                "today_measured_wh": self.today_measured_wh, "today_clear_wh": self.today_clear_wh,
                "last_day_clear_wh": self.last_day_clear_wh}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back what ``state`` wrote; every value checked first (ValueError names the bad one)."""
        value, today = state.get("value"), state.get("today")
        checked = (
            _amount(state.get("initial"), "initial"),
            None if value is None else _amount(value, "value"),
            _count(state.get("days"), "days"),
            None if today is None else date.fromisoformat(str(today)),
            _amount(state.get("today_measured_wh"), "today_measured_wh"),
            _amount(state.get("today_clear_wh"), "today_clear_wh"),
            _amount(state.get("last_day_clear_wh"), "last_day_clear_wh"),
        )
        (self.initial, self.value, self.days, self.today, self.today_measured_wh,
         self.today_clear_wh, self.last_day_clear_wh) = checked
