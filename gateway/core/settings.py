"""The user's persisted site settings (docs/architecture.md, "Vocabulary") and their stored JSON form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.core.tariff import Tariff, parse_tariff

OperationMode = Literal["self_consumption", "autonomous", "backup"]
ExportRule = Literal["battery_ok", "pv_only", "never"]

OPERATION_MODES: tuple[OperationMode, ...] = get_args(OperationMode)
EXPORT_RULES: tuple[ExportRule, ...] = get_args(ExportRule)

_FORMAT_VERSION = 1

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteSettings:
    """What the user asked for, as set through the Fleet commands.

    What each one makes the home do: docs/api.md, "Settings and what they do on the device".

    Attributes:
        backup_reserve_pct: 0..100 %; the battery never discharges below it while the grid is up.
        operation_mode: ``self_consumption``, ``autonomous`` (time-based control) or ``backup``.
        storm_mode_enabled: an active storm alert switches the site to backup behaviour.
        export_rule: ``battery_ok`` (solar and battery may export), ``pv_only``, ``never``.
        grid_charging_allowed: False = ``disallow_charge_from_grid_with_solar_installed``.
        off_grid_ev_reserve_pct: 0..100 %; EV charging stops below it during an outage.
        tariff: the validated ``tariff_content_v2``, or None when none was set.
    """

    backup_reserve_pct: int = 20
    operation_mode: OperationMode = "self_consumption"
    storm_mode_enabled: bool = True
    export_rule: ExportRule = "pv_only"
    grid_charging_allowed: bool = True
    off_grid_ev_reserve_pct: int = 0
    tariff: Tariff | None = None

    def __post_init__(self) -> None:
        for name in ("backup_reserve_pct", "off_grid_ev_reserve_pct"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise ValueError(f"{name} must be an integer 0..100, got {value!r}")
        if self.operation_mode not in OPERATION_MODES:
            raise ValueError(f"operation_mode must be one of {OPERATION_MODES}")
        if self.export_rule not in EXPORT_RULES:
            raise ValueError(f"export_rule must be one of {EXPORT_RULES}")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data for storage; the tariff is kept as the wire dict the client sent."""
        return {
            "format": _FORMAT_VERSION,
            "backup_reserve_pct": self.backup_reserve_pct,
            "operation_mode": self.operation_mode,
            "storm_mode_enabled": self.storm_mode_enabled,
            "export_rule": self.export_rule,
            "grid_charging_allowed": self.grid_charging_allowed,
            "off_grid_ev_reserve_pct": self.off_grid_ev_reserve_pct,
            "tariff": self.tariff.wire() if self.tariff is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> SiteSettings:
        """Load what :meth:`to_json` produced (as data or JSON text); missing keys take defaults.

        Raises:
            ValueError: not valid stored settings (a ``TariffError`` for the tariff).
        """
        try:
            if isinstance(data, str | bytes):
                stored = _Stored.model_validate_json(data)
            else:
                stored = _Stored.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "settings"
            raise ValueError(f"stored settings: {where}: {first['msg']}") from None
        defaults = cls()
        return cls(
            backup_reserve_pct=_pick(stored.backup_reserve_pct, defaults.backup_reserve_pct),
            operation_mode=_pick(stored.operation_mode, defaults.operation_mode),
            storm_mode_enabled=_pick(stored.storm_mode_enabled, defaults.storm_mode_enabled),
            export_rule=_pick(stored.export_rule, defaults.export_rule),
            grid_charging_allowed=_pick(
                stored.grid_charging_allowed, defaults.grid_charging_allowed
            ),
            off_grid_ev_reserve_pct=_pick(
                stored.off_grid_ev_reserve_pct, defaults.off_grid_ev_reserve_pct
            ),
            tariff=parse_tariff(stored.tariff, prefix="tariff") if stored.tariff else None,
        )


class _Stored(BaseModel):
    # Unknown keys are ignored so a newer gateway's row still loads after a downgrade.
    model_config = ConfigDict(extra="ignore", strict=True)

    format: int = _FORMAT_VERSION
    backup_reserve_pct: int | None = None
    operation_mode: OperationMode | None = None
    storm_mode_enabled: bool | None = None
    export_rule: ExportRule | None = None
    grid_charging_allowed: bool | None = None
    off_grid_ev_reserve_pct: int | None = None
    tariff: dict[str, Any] | None = None


def _pick(value: _T | None, default: _T) -> _T:
    return default if value is None else value
