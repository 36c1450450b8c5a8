"""Victron GX (Venus OS) over MQTT: the pure dbus-flashmq codec and the driver built on it."""

from __future__ import annotations

from drivers.victron_gx.driver import VictronGxDriver, VictronGxOptions

__all__ = ["VictronGxDriver", "VictronGxOptions"]
