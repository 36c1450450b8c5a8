"""Sample inputs shared by tests: tariffs (PG&E-like, flat, a live capture, HA's), readings, windows."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from gateway.core.history import PowerSample, Window, resolve_window

Json = dict[str, Any]


def _pge_seasons(summer: dict[str, float], winter: dict[str, float]) -> Json:
    def periods() -> Json:
        return {
            "OFF_PEAK": {"periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 6, "toHour": 15}]},
            "PARTIAL_PEAK": {
                "periods": [
                    {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 15, "toHour": 16},
                    {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 21, "toHour": 0},
                ]
            },
            "ON_PEAK": {
                "periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 16, "toHour": 21}]
            },
        }

    seasons = {
        "Summer": {
            "fromMonth": 6,
            "fromDay": 1,
            "toMonth": 9,
            "toDay": 30,
            "tou_periods": periods(),
        },
        "Winter": {
            "fromMonth": 10,
            "fromDay": 1,
            "toMonth": 5,
            "toDay": 31,
            "tou_periods": periods(),
        },
    }
    charges = {
        "ALL": {"rates": {"ALL": 0}},
        "Summer": {"rates": summer},
        "Winter": {"rates": winter},
    }
    return {"seasons": seasons, "energy_charges": charges}


def pge_like_sample() -> Json:
    """A fresh PG&E EV2-A-like two-season tariff (Winter wraps the year end) with a sell side."""
    buy = _pge_seasons(
        {"ON_PEAK": 0.5576, "PARTIAL_PEAK": 0.4471, "OFF_PEAK": 0.2451},
        {"ON_PEAK": 0.4305, "PARTIAL_PEAK": 0.4138, "OFF_PEAK": 0.2451},
    )
    sell = _pge_seasons(
        {"ON_PEAK": 0.30, "PARTIAL_PEAK": 0.12, "OFF_PEAK": 0.05},
        {"ON_PEAK": 0.20, "PARTIAL_PEAK": 0.10, "OFF_PEAK": 0.04},
    )
    return {
        "version": 1,
        "utility": "Pacific Gas & Electric Co",
        "code": "PGE-EV-2A-TOU",
        "name": "Residential - Time of Use - Plug-In Electric Vehicle 2",
        "currency": "USD",
        "monthly_minimum_bill": 0,
        "monthly_charges": 0,
        "daily_charges": [{"name": "Charge", "amount": 0}],
        "daily_demand_charges": {},
        "demand_charges": {
            "ALL": {"rates": {"ALL": 0}},
            "Summer": {"rates": {}},
            "Winter": {"rates": {}},
        },
        "energy_charges": buy["energy_charges"],
        "seasons": buy["seasons"],
        "sell_tariff": {
            "name": "PG&E export credit",
            "utility": "Pacific Gas & Electric Co",
            "daily_charges": [{"name": "Charge", "amount": 0}],
            "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
            "energy_charges": sell["energy_charges"],
            "seasons": sell["seasons"],
        },
    }


def flat_sample(buy: float = 0.30, sell: float = 0.05) -> Json:
    """A fresh flat tariff: one ``ALL`` season, one ``ALL`` period, one price each way."""

    def seasons() -> Json:
        return {
            "ALL": {
                "fromMonth": 1,
                "fromDay": 1,
                "toMonth": 12,
                "toDay": 31,
                "tou_periods": {"ALL": {"periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 6}]}},
            }
        }

    return {
        "version": 1,
        "code": "FLAT",
        "name": "Flat rate",
        "utility": "Example Utility",
        "currency": "USD",
        "daily_charges": [{"name": "Charge"}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
        "energy_charges": {"ALL": {"rates": {"ALL": buy}}},
        "seasons": seasons(),
        "sell_tariff": {
            "name": "Flat rate export",
            "energy_charges": {"ALL": {"rates": {"ALL": sell}}},
            "seasons": seasons(),
        },
    }


def live_capture_sample() -> Json:
    """Teslemetry's live capture: 48 half-hour periods, zero fields omitted, empty Winter."""
    periods: Json = {}
    buy: dict[str, float] = {}
    sell: dict[str, float] = {}
    for slot in range(48):
        hour, minute = divmod(slot * 30, 60)
        end_hour, end_minute = divmod(slot * 30 + 30, 60)
        window: Json = {"toDayOfWeek": 6}
        for key, value in (
            ("fromHour", hour),
            ("fromMinute", minute),
            ("toHour", end_hour),
            ("toMinute", end_minute),
        ):
            if value:
                window[key] = value
        name = f"PERIOD_{hour:02d}_{minute:02d}"
        periods[name] = {"periods": [window]}
        buy[name] = 0.50 if 17 <= hour < 20 else 0.24 if hour < 7 else 0.31
        sell[name] = 0.45 if name == "PERIOD_17_30" else 0.0
    season = {"fromDay": 1, "toDay": 31, "fromMonth": 1, "toMonth": 12, "tou_periods": periods}
    return {
        "code": "POWER_SYNC:FLOW_POWER",
        "name": "Flow Power (PowerSync)",
        "utility": "Flow Power",
        "currency": "AUD",
        "version": 1,
        "daily_charges": [{"name": "Charge"}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {}, "Winter": {}},
        "energy_charges": {"ALL": {"rates": {"ALL": 0}}, "Summer": {"rates": buy}, "Winter": {}},
        "seasons": {"Summer": season, "Winter": {}},
        "sell_tariff": {
            "name": "Flow Power (managed by PowerSync)",
            "energy_charges": {
                "ALL": {"rates": {"ALL": 0}},
                "Summer": {"rates": sell},
                "Winter": {},
            },
            "seasons": {"Summer": copy.deepcopy(season), "Winter": {}},
        },
    }


def multi_season_sample() -> Json:
    """HA's site_info_multi_season fixture: Winter wraps the year end, off-peak wraps midnight."""

    def seasons() -> Json:
        return {
            "Summer": {
                "fromDay": 1,
                "toDay": 30,
                "fromMonth": 4,
                "toMonth": 9,
                "tou_periods": {
                    "PEAK": {
                        "periods": [
                            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 16, "toHour": 21}
                        ]
                    },
                    "OFF_PEAK": {
                        "periods": [
                            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 21, "toHour": 16}
                        ]
                    },
                },
            },
            "Winter": {
                "fromDay": 1,
                "toDay": 31,
                "fromMonth": 10,
                "toMonth": 3,
                "tou_periods": {
                    "PEAK": {
                        "periods": [
                            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 17, "toHour": 20}
                        ]
                    },
                    "OFF_PEAK": {
                        "periods": [
                            {"fromDayOfWeek": 0, "toDayOfWeek": 6, "fromHour": 20, "toHour": 17}
                        ]
                    },
                },
            },
        }

    return {
        "code": "Test",
        "name": "Multi Season Tariff",
        "utility": "Test Utility",
        "version": 1,
        "daily_charges": [{"name": "Charge"}],
        "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
        "energy_charges": {
            "ALL": {"rates": {"ALL": 0}},
            "Summer": {"rates": {"PEAK": 0.35, "OFF_PEAK": 0.2}},
            "Winter": {"rates": {"PEAK": 0.25, "OFF_PEAK": 0.12}},
        },
        "seasons": seasons(),
        "sell_tariff": {
            "name": "Multi Season Tariff Sell",
            "utility": "Test Utility",
            "daily_charges": [],
            "demand_charges": {"ALL": {"rates": {"ALL": 0}}},
            "energy_charges": {
                "ALL": {"rates": {"ALL": 0}},
                "Summer": {"rates": {"PEAK": 0.18, "OFF_PEAK": 0.08}},
                "Winter": {"rates": {"PEAK": 0.12, "OFF_PEAK": 0.05}},
            },
            "seasons": seasons(),
        },
    }


def one_season(tou_periods: Json, energy_charges: Json) -> Json:
    """A whole-year single-season buy-only tariff."""
    return {
        "version": 1,
        "code": "T",
        "name": "T",
        "utility": "U",
        "energy_charges": energy_charges,
        "seasons": {
            "Year": {
                "fromMonth": 1,
                "fromDay": 1,
                "toMonth": 12,
                "toDay": 31,
                "tou_periods": tou_periods,
            },
        },
    }


def weekday_weekend_sample() -> Json:
    return one_season(
        {
            "PEAK": {
                "periods": [{"fromDayOfWeek": 0, "toDayOfWeek": 4, "fromHour": 16, "toHour": 21}]
            },
            "OFF_PEAK": {
                "periods": [
                    {"fromDayOfWeek": 0, "toDayOfWeek": 4, "toHour": 16},
                    {"fromDayOfWeek": 0, "toDayOfWeek": 4, "fromHour": 21, "toHour": 24},
                ]
            },
            "WEEKEND": {"periods": [{"fromDayOfWeek": 5, "toDayOfWeek": 6}]},
        },
        {"Year": {"rates": {"PEAK": 0.5, "OFF_PEAK": 0.2, "WEEKEND": 0.15}}},
    )


def power_sample(at: datetime, solar: float = 0, battery: float = 0, grid: float = 0) -> PowerSample:
    """A site reading at ``at`` (W), its load from the balance."""
    return PowerSample(taken_at=at, solar_w=solar, battery_w=battery, grid_w=grid)


def history_window(**kwargs: Any) -> Window:
    """A resolved window: a day query at 10:30 PST in Los Angeles unless ``kwargs`` say else."""
    params: dict[str, Any] = {
        "period": "day",
        "start_date": None,
        "end_date": None,
        "time_zone": None,
        "site_tz": "America/Los_Angeles",
        "now": datetime(2024, 1, 1, 18, 30, tzinfo=UTC),  # 10:30 PST
    }
    params.update(kwargs)
    return resolve_window(
        params.pop("period"),
        params.pop("start_date"),
        params.pop("end_date"),
        params.pop("time_zone"),
        **params,
    )


def start_of(w: Window) -> datetime:
    """The start of a window that has one (every period but an open lifetime)."""
    assert w.start is not None
    return w.start
