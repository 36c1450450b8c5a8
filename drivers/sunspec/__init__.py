"""SunSpec Modbus devices: the sans-IO codec and the driver built on it."""

from __future__ import annotations

from drivers.sunspec.driver import SunSpecDriver, SunSpecOptions

__all__ = ["SunSpecDriver", "SunSpecOptions"]
