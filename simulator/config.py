"""Pydantic models of the simulator's configuration (the `simulator:` section of a YAML config)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Read once at import: validating a zone name must not touch the filesystem later, because configs
# are often parsed inside a running event loop where blocking I/O is a bug.
_KNOWN_ZONES: frozenset[str] = frozenset(zoneinfo.available_timezones()) | {"UTC"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimDeviceConfig(_Strict):
    """One simulated device of a home and where it listens.

    Attributes:
        id: Device id within its home, e.g. "inverter".
        kind: Protocol face: "sunspec" (Modbus TCP) for this model.
        host: Loopback address to bind.
        port: TCP port; 0 = ephemeral (read the bound port back from the simulator).
        unit_id: Modbus unit id the device answers.
    """

    id: str = Field(min_length=1)
    kind: Literal["sunspec"]
    # hybrid: inverter + battery + meter models; pv: a PV inverter with a grid meter only (the
    # battery of such a home is another device, e.g. an mqtt_battery)
    profile: Literal["hybrid", "pv"] = "hybrid"
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    unit_id: int = Field(default=1, ge=1, le=247)
    manufacturer: str = Field(default="SimCo", max_length=32)
    model: str = Field(default="SimHybrid 8K", max_length=32)
    serial_number: str = Field(default="SIM0001", max_length=32)
    firmware: str = Field(default="1.0.0", max_length=16)


class VictronGxConfig(_Strict):
    """A Victron GX (Venus OS) face: its own embedded MQTT broker speaking dbus-flashmq topics.

    Attributes:
        id: Device id within its home, e.g. "gx".
        kind: Always "victron_gx".
        host: Loopback address the GX's embedded broker binds.
        port: Broker TCP port; 0 = ephemeral (read the bound port back from the simulator).
        portal_id: The GX's portal id (12 hex digits), the second level of every topic.
        vebus_instance: Device instance of the VE.Bus inverter/charger (227 on a Cerbo GX).
        modbus_port: Port of the optional Modbus TCP face (units 100 and vebus_instance); None = off,
            0 = ephemeral.
        keepalive_timeout_s: Real seconds values keep flowing after the last keepalive (60 on Venus).
        broker_username: With broker_password, the one login the embedded broker accepts (Venus
            OS's secured profile refuses anonymous clients); None = anonymous clients welcome.
    """

    id: str = Field(min_length=1)
    kind: Literal["victron_gx"]
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    portal_id: str = Field(default="c0619ab1f00d", pattern=r"^[0-9a-z]{1,32}$")
    vebus_instance: int = Field(default=227, ge=0, le=255)
    modbus_port: int | None = Field(default=None, ge=0, le=65535)
    keepalive_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    broker_username: str | None = None
    broker_password: str | None = Field(default=None, repr=False)


class MqttBatteryConfig(_Strict):
    """A generic MQTT battery: a client of an external broker publishing JSON state.

    Attributes:
        id: Device id within its home, e.g. "battery".
        kind: Always "mqtt_battery".
        broker_host: Host of the broker the battery connects to.
        broker_port: Port of that broker.
        base_topic: Topic prefix (no trailing slash), e.g. "sim/battery1".
        publish_interval_s: Real seconds between state publishes.
        broker_username: Login at the broker (None: anonymous), as a battery on a secured
            broker has one; broker_password its password.
    """

    id: str = Field(min_length=1)
    kind: Literal["mqtt_battery"]
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(ge=1, le=65535)
    broker_username: str | None = None
    broker_password: str | None = Field(default=None, repr=False)
    base_topic: str = Field(default="sim/battery1", pattern=r"^[^#+\s]+[^/#+\s]$")
    publish_interval_s: float = Field(default=1.0, gt=0, le=3600)

    @property
    def host(self) -> str:
        """Where the device is reached: the broker's host (as in the simulator's Endpoint)."""
        return self.broker_host

    @property
    def port(self) -> int:
        """Where the device is reached: the broker's port (as in the simulator's Endpoint)."""
        return self.broker_port


class OcppChargerConfig(_Strict):
    """An EV charger speaking OCPP 1.6J to a central system, and the car plugged into it.

    Attributes:
        id: Device id within its home, e.g. "charger".
        kind: Always "ocpp_charger".
        central_url: The central system's URL without the id, e.g. "ws://127.0.0.1:9000".
        charge_point_id: The id appended to the URL (and the HTTP Basic user).
        password: HTTP Basic password (OCPP security profile 1); None sends none.
        max_current_a: The charger's hardware limit per phase; phases and voltage_v its wiring.
        car_battery_wh, car_soc_pct, car_max_w: The car: battery size, SoC, onboard charger.
        meter_interval_s: Real seconds between MeterValues while a transaction runs.
        auto_authorize: Start a transaction on plug-in without an id tag ("free vend").
    """

    id: str = Field(min_length=1)
    kind: Literal["ocpp_charger"]
    central_url: str = Field(default="ws://127.0.0.1:9000", pattern=r"^wss?://[^/\s]+(/[^\s]*)?$")
    charge_point_id: str = Field(default="SIM-WC-1", pattern=r"^[A-Za-z0-9._\-:]{1,48}$")
    password: str | None = Field(default=None, min_length=8, max_length=40)
    max_current_a: float = Field(default=16, gt=0, le=80)
    phases: Literal[1, 3] = 3
    voltage_v: float = Field(default=230, gt=0, le=480)
    car_battery_wh: float = Field(default=60000, gt=0, le=250000)
    car_soc_pct: float = Field(default=40, ge=0, le=100)
    car_max_w: float = Field(default=11000, gt=0, le=50000)
    meter_interval_s: float = Field(default=2.0, gt=0, le=3600)
    auto_authorize: bool = False

    @property
    def host(self) -> str:
        """The central system's host (as in the simulator's Endpoint)."""
        return self.central_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        """The central system's port (as in the simulator's Endpoint)."""
        netloc = self.central_url.split("://", 1)[1].split("/", 1)[0]
        _, _, port = netloc.rpartition(":")
        return int(port) if port.isdigit() else (443 if self.central_url.startswith("wss") else 80)


class SungrowShConfig(_Strict):
    """A Sungrow SH-RT hybrid inverter on its LAN port (Modbus TCP; simulator/devices/sungrow_sh.py).

    Attributes:
        device_type_code: Input register 5000: 0x0E03 SH10RT, 0x0E02 SH8.0RT, 0x0E00 SH5.0RT...
        answer_delay_s: Real seconds each answer takes.
    """

    id: str = Field(min_length=1)
    kind: Literal["sungrow_sh"]
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    unit_id: int = Field(default=1, ge=1, le=247)
    device_type_code: int = Field(default=0x0E03, ge=0, le=0xFFFF)
    serial_number: str = Field(default="A2350415770", max_length=20)
    answer_delay_s: float = Field(default=0.005, ge=0, le=5)


class HuaweiSun2000Config(_Strict):
    """A Huawei SUN2000 with LUNA2000 and power sensor (Modbus TCP; simulator/devices/huawei_sun2000.py).

    Attributes:
        settle_s: Real seconds after a connect during which requests go unanswered (about 1 s
            on the SDongle).
        answer_delay_s: Real seconds each answer takes (tens of ms on real hardware).
    """

    id: str = Field(min_length=1)
    kind: Literal["huawei_sun2000"]
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    model: str = Field(default="SUN2000-10KTL-M1", max_length=30)
    serial_number: str = Field(default="HV2150012345", max_length=20)
    firmware: str = Field(default="V100R001C00SPC135", max_length=30)
    settle_s: float = Field(default=1.0, ge=0, le=30)
    answer_delay_s: float = Field(default=0.03, ge=0, le=5)


#: Any simulated device's configuration, told apart by `kind`.
DeviceConfig = Annotated[
    SimDeviceConfig | VictronGxConfig | MqttBatteryConfig | OcppChargerConfig | SungrowShConfig
    | HuaweiSun2000Config,
    Field(discriminator="kind"),
]


class HomeConfig(_Strict):
    """One simulated home: PV, house load, battery, grid connection and its devices.

    Powers in W, energies in Wh, percentages 0..100.
    """

    id: str = Field(min_length=1)
    latitude: float = Field(default=52.52, ge=-90, le=90)
    longitude: float = Field(default=13.40, ge=-180, le=180)
    time_zone: str = "Europe/Berlin"
    pv_peak_w: float = Field(default=8000, ge=0, le=30000)
    base_load_w: float = Field(default=350, ge=0, le=5000)
    battery_capacity_wh: float = Field(default=13500, gt=0, le=65000)
    battery_max_charge_w: float = Field(default=5000, gt=0, le=30000)
    battery_max_discharge_w: float = Field(default=5000, gt=0, le=30000)
    round_trip_efficiency: float = Field(default=0.9, gt=0, le=1)
    initial_soc_pct: float = Field(default=50, ge=0, le=100)
    inverter_max_w: float = Field(default=8000, gt=0, le=30000)
    seed: int = 1
    devices: list[DeviceConfig]

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _KNOWN_ZONES:
            raise ValueError(f"unknown IANA time zone {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_devices(self) -> HomeConfig:
        ids = [d.id for d in self.devices]
        if len(ids) != len(set(ids)):
            raise ValueError(f"home {self.id}: device ids must be unique, got {ids}")
        return self


class ControlConfig(_Strict):
    """Where the control API listens (loopback; port 0 = ephemeral)."""

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class SimulatorConfig(_Strict):
    """The whole simulator: clock, control API and homes.

    Attributes:
        clock_speed: Simulated seconds per real second (0 freezes the clock).
        start: Simulated start time (timezone-aware); None = the real time at start-up.
        tick_s: Real seconds between physics steps; 0 = no background ticker (tests step by hand).
    """

    control: ControlConfig = ControlConfig()
    clock_speed: float = Field(default=1.0, ge=0, le=100_000)
    start: datetime | None = None
    tick_s: float = Field(default=0.1, ge=0, le=60)
    homes: list[HomeConfig]

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("start must carry a time zone offset")
        return value

    @model_validator(mode="after")
    def _unique_homes(self) -> SimulatorConfig:
        ids = [h.id for h in self.homes]
        if len(ids) != len(set(ids)):
            raise ValueError(f"home ids must be unique, got {ids}")
        return self


def load_simulator_config(mapping: Mapping[str, Any]) -> SimulatorConfig:
    """Parse the `simulator:` section of a YAML config (already loaded into a mapping).

    Raises:
        pydantic.ValidationError: naming the bad field.
    """
    return SimulatorConfig.model_validate(dict(mapping))
