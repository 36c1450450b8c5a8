"""The configuration keys of a profile device (importable without its transport)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.profile.catalog import PROFILES


class ProfileOptions(BaseModel):
    """Configuration of one Modbus TCP device described by a bundled profile.

    ``profile``: the family (a file name under ``drivers/profiles/`` without ``.yaml``).
    ``unit_id`` unset takes the profile's ``default_unit_id``. ``timeout_s`` is per transaction;
    ``confirm_timeout_s`` bounds the read-back after a write. ``settle_s``: how long the device
    ignores requests after a connect (None = the profile's ``connect_settle_s``; the first
    transaction on a new connection waits for it). ``capacity_wh``: the battery's nameplate when
    the device does not report it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str
    host: str
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255)
    timeout_s: float = Field(1.0, gt=0)
    confirm_timeout_s: float = Field(3.0, gt=0)
    settle_s: float | None = Field(None, ge=0, le=30)
    capacity_wh: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _profile_unit(cls, data: Any) -> Any:
        if isinstance(data, dict) and "unit_id" not in data and data.get("profile") in PROFILES:
            return {**data, "unit_id": PROFILES[data["profile"]].default_unit_id}
        return data

    @field_validator("profile")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown profile {value!r}; known: {', '.join(sorted(PROFILES))}")
        return value

    @property
    def settle(self) -> float:
        """Seconds the device ignores requests after a connect."""
        return PROFILES[self.profile].connect_settle_s if self.settle_s is None else self.settle_s

    @property
    def unit(self) -> int:
        """The unit id to address (configured, else the profile's default)."""
        return self.unit_id
