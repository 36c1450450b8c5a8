"""The pydantic wire model of ``tariff_content_v2`` (docs/api.md "Tariffs") and its constants."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

ALL: Final = "ALL"
"""Wildcard key in ``energy_charges``/``demand_charges``: any season, or any period."""

TOU_SETTINGS_PATH: Final = "tou_settings.tariff_content_v2"
"""Where the tariff sits in a ``POST time_of_use_settings`` body; the default error-path prefix."""

MINUTES_PER_DAY: Final = 24 * 60
MINUTES_PER_WEEK: Final = 7 * MINUTES_PER_DAY
DAYS_PER_YEAR: Final = 366  # Feb 29 is a day of the tariff year: seasons must cover it too
LEAP_YEAR: Final = 2000  # the calendar season dates are read in, so that Feb 29 exists


class _WireModel(BaseModel):
    # strict: a string hour or a boolean price is a client bug, not something to coerce;
    # extra="allow": the stored and served tariff is exactly what the client sent.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True, populate_by_name=True)


class Window(_WireModel):
    """One time window ``[from, to)`` repeated on each day ``fromDayOfWeek..toDayOfWeek``.

    Days of week are 0 = Monday .. 6 = Sunday and the range may wrap (5..1 = Sat..Tue).
    Omitted fields default as live captures imply (proto3 JSON drops zeros): ``from*`` = 0,
    ``toHour``/``toMinute`` = 0, ``toDayOfWeek`` = 6. ``toHour`` 24 (or 0) is the next midnight;
    a ``to`` at or before ``from`` runs past midnight into the next day.
    """

    from_day_of_week: int = Field(0, alias="fromDayOfWeek")
    to_day_of_week: int = Field(6, alias="toDayOfWeek")
    from_hour: int = Field(0, alias="fromHour")
    from_minute: int = Field(0, alias="fromMinute")
    to_hour: int = Field(0, alias="toHour")
    to_minute: int = Field(0, alias="toMinute")


class TouPeriod(_WireModel):
    """A named TOU period (``ON_PEAK``, ``PERIOD_17_30``...): the windows it applies in."""

    periods: list[Window] = Field(default_factory=list)


class Season(_WireModel):
    """A season: the inclusive range ``fromMonth/fromDay .. toMonth/toDay`` (may wrap the year)."""

    from_month: int | None = Field(None, alias="fromMonth")
    from_day: int | None = Field(None, alias="fromDay")
    to_month: int | None = Field(None, alias="toMonth")
    to_day: int | None = Field(None, alias="toDay")
    tou_periods: dict[str, TouPeriod] = Field(default_factory=dict)


class Charges(_WireModel):
    """One season's (or ``ALL``'s) rates: period name (or ``ALL``) -> price ($/kWh or $/kW)."""

    rates: dict[str, float] = Field(default_factory=dict)


class DailyCharge(_WireModel):
    """A fixed daily charge."""

    name: str | None = None
    amount: float | None = None


class SellTariff(_WireModel):
    """The export side of a tariff (and the shape the buy side shares)."""

    name: str | None = None
    utility: str | None = None
    code: str | None = None
    currency: str | None = None
    monthly_minimum_bill: float | None = None
    min_applicable_demand: float | None = None
    max_applicable_demand: float | None = None
    monthly_charges: float | None = None
    daily_charges: list[DailyCharge] = Field(default_factory=list)
    demand_charges: dict[str, Charges] = Field(default_factory=dict)
    energy_charges: dict[str, Charges] = Field(default_factory=dict)
    seasons: dict[str, Season] = Field(default_factory=dict)


class TariffContentV2(SellTariff):
    """The ``tariff_content_v2`` object: buy prices, seasons and an optional sell tariff."""

    version: int | None = None
    sell_tariff: SellTariff | None = None
