"""Time-of-use tariffs: the wire model, its validation rules and price lookup."""

from gateway.core.tariff.prices import CHEAP_FRACTION, EXPENSIVE_FRACTION, Price, PriceLevel, Tariff
from gateway.core.tariff.rules import TariffError, parse_tariff, parse_tou_settings
from gateway.core.tariff.wire import ALL, TOU_SETTINGS_PATH, TariffContentV2

__all__ = [
    "ALL",
    "CHEAP_FRACTION",
    "EXPENSIVE_FRACTION",
    "TOU_SETTINGS_PATH",
    "Price",
    "PriceLevel",
    "Tariff",
    "TariffContentV2",
    "TariffError",
    "parse_tariff",
    "parse_tou_settings",
]
