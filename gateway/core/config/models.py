"""The configuration's pydantic models: gateway, sites, devices (driver options validated by type)."""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from drivers.options import DRIVER_OPTIONS
from gateway.core.config.chargers import ChargePointConfig, OcppSection
from gateway.core.config.hosts import host_problem, valid_host
from gateway.core.config.northbound import MqttNorthbound
from gateway.core.config.paths import default_data_dir
from gateway.core.config.planner import PlannerConfig
from gateway.core.config.storm import StormWatch

# Known once, at import: validating a zone by loading it would read tz files, and configs are
# also parsed inside a running event loop (tests, reloads), where blocking I/O is a bug.
_KNOWN_ZONES = frozenset(zoneinfo.available_timezones()) | {"UTC"}
JWT_SECRET_ENV = "ENERGY_GATEWAY_JWT_SECRET"  # noqa: S105 - the variable name, not a secret
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key of at least 256 bits
# Secrets printed in this repository (config.example.yaml): anyone can sign tokens with them.
PUBLISHED_SECRETS = frozenset({"demo-only-secret-change-me-0123456789"})
SECRET_FIX = (
    "generate one with  python -c 'import secrets; print(secrets.token_urlsafe(48))'  and put "
    f"it in gateway.jwt_secret or the {JWT_SECRET_ENV} environment variable"
)
Loc = tuple[str | int, ...]  # a key path in the file: ("sites", 0, "devices", 1, "options", "port")


class ConfigError(Exception):
    """A configuration problem, each line naming a key path and where it is in the file."""

    def __init__(self, problems: Sequence[str], source: str = "<config>") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Plan(_Strict):
    """A rate-limit plan: requests allowed per token per minute and per day."""

    per_minute: int = Field(600, ge=1)
    per_day: int = Field(200_000, ge=1)


class RateLimits(_Strict):
    default_plan: str = "standard"
    plans: dict[str, Plan] = Field(default_factory=lambda: {"standard": Plan()})

    @model_validator(mode="after")
    def _default_plan_exists(self) -> RateLimits:
        if self.default_plan not in self.plans:
            raise ValueError(f"default_plan {self.default_plan!r} is not one of the plans")
        return self


_CLOCK_URL = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[^/:\[\]]+)(:\d{1,5})?(/.*)?$")


class ClockSection(_Strict):
    """Where the gateway's domain time comes from (docs/api.md, "Clock").

    ``wall``: the machine's clock. ``simulator``: a simulator's ``GET {url}/clock``, read every
    ``sync_interval_s`` and extrapolated in between, so tariff periods, history buckets and
    battery command timers run in simulated time (and as fast as it runs).
    """

    source: Literal["wall", "simulator"] = "wall"
    url: str | None = None  # the simulator's control API, e.g. http://127.0.0.1:15000
    sync_interval_s: float = Field(2.0, ge=0.1, le=3600)
    timeout_s: float = Field(2.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _CLOCK_URL.match(value)
        if match is None:
            raise ValueError(f"{value[:80]!r} is not an http:// or https:// URL with a host")
        problem = host_problem(match.group(1).strip("[]"))
        if problem is not None:
            raise ValueError(f"the host {problem}" if problem.startswith("is ") else problem)
        if match.group(2) and not 0 < int(match.group(2)[1:]) <= 65535:
            raise ValueError(f"port {match.group(2)[1:]} is outside 1..65535")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _url_for_simulator(self) -> ClockSection:
        if self.source == "simulator" and self.url is None:
            raise ValueError("source: simulator needs the simulator's control API url, "
                             "e.g. url: http://127.0.0.1:15000")
        return self


class GatewaySection(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Default: the state directory (config/paths.py); a relative value in a file is taken
    # relative to the file (loading.py::read_config), never to the working directory.
    data_dir: Path = Field(default_factory=default_data_dir)
    jwt_secret: str | None = Field(None, min_length=32)  # RFC 7518: >= 256 bits for HS256
    rate_limits: RateLimits = RateLimits()
    command_timeout_s: float = Field(5.0, gt=0)
    proxy_host: str = "127.0.0.1"  # where device proxies (``proxy_port``) listen
    reconcile_interval_s: float = Field(30.0, gt=0)
    journal_retention_days: int = Field(90, ge=1, le=36500)  # command journal entries kept
    clock: ClockSection = ClockSection()
    ocpp: OcppSection | None = None  # the OCPP central system for chargers (None: not started)

    check_hosts = field_validator("host", "proxy_host")(valid_host)


@dataclass(frozen=True)
class _TypedOptions:
    """A device's ``options:`` as written, carried with its ``type`` to the driver's model."""

    type: str
    value: Any


_TYPE_OF_MODEL = {model: name for name, model in DRIVER_OPTIONS.items()}


def _options_tag(value: Any) -> str | None:
    """Which driver's model validates these options (pydantic's union discriminator)."""
    if isinstance(value, _TypedOptions):
        return f"options[{value.type}]"
    name = _TYPE_OF_MODEL.get(type(value))
    return None if name is None else f"options[{name}]"


def _written(value: Any) -> Any:
    return value.value if isinstance(value, _TypedOptions) else value


def _options_union() -> Any:
    # One member per driver, told apart by the device's ``type`` (a tagged union keeps pydantic's
    # own error locations, so a bad option is reported at its key path and line). The tags carry
    # "[...]" so that error locations can drop them.
    members = tuple(Annotated[model, BeforeValidator(_written), Tag(f"options[{name}]")]
                    for name, model in DRIVER_OPTIONS.items())
    return Annotated[Union[members], Discriminator(  # noqa: UP007 - a union built at run time
        _options_tag, custom_error_type="options_without_type",
        custom_error_message="cannot be checked without a valid device type")]


if TYPE_CHECKING:
    DriverOptions = BaseModel
else:
    DriverOptions = _options_union()


class DeviceConfig(_Strict):
    """One device of a site: the gateway's keys here, the driver's own under ``options``.

    ``options`` is the driver's options model (``drivers.options.DRIVER_OPTIONS[type]``),
    validated once, here: the gateway hands it to the driver as it is.
    """

    name: str = Field(min_length=1)
    type: str
    poll_interval_s: float = Field(1.0, gt=0)
    stale_after_s: float | None = Field(None, gt=0)  # the gateway's stale limit (see stale_limit_s)
    simulated: str | None = None  # a device of the config's simulator: section (demo, simulate)
    # Modbus TCP proxy: third parties (Home Assistant, evcc, loggers) share the gateway's one
    # connection to this device on this port; read-only unless proxy_writes.
    proxy_port: int | None = Field(None, ge=0, le=65535)
    proxy_writes: bool = False
    options: DriverOptions

    @property
    def stale_limit_s(self) -> float:
        """Age after which this device's telemetry is no longer served (default 5 polls, >= 3 s)."""
        return self.stale_after_s or max(3.0, 5 * self.poll_interval_s)

    @model_validator(mode="before")
    @classmethod
    def _typed_options(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        kind = data.get("type")
        if isinstance(kind, str) and kind not in DRIVER_OPTIONS:
            raise ValueError(
                f"unknown device type {kind!r}; valid types: {', '.join(sorted(DRIVER_OPTIONS))}"
            )
        if isinstance(kind, str) and "options" in data and not isinstance(data["options"], BaseModel):
            return {**data, "options": _TypedOptions(kind, data["options"])}
        return data

    @model_validator(mode="after")
    def _fits_the_driver(self) -> DeviceConfig:
        if type(self.options) is not DRIVER_OPTIONS[self.type]:
            raise ValueError(f"options are {type(self.options).__name__}, not the options of a "
                             f"{self.type!r} device ({DRIVER_OPTIONS[self.type].__name__})")
        host = getattr(self.options, "host", None)
        if isinstance(host, str) and (problem := host_problem(host)) is not None:
            raise ValueError(f"host {problem}")
        if self.proxy_port is not None and not all(
                hasattr(self.options, key) for key in ("host", "port", "unit_id")):
            raise ValueError(f"proxy_port needs a Modbus TCP device; {self.type!r} is not one")
        return self


#: The keys of a device itself; every other key of a device belongs to its driver (``options:``).
DEVICE_KEYS = frozenset(DeviceConfig.model_fields) - {"options"}


class SiteConfig(_Strict):
    energy_site_id: int = Field(ge=1, lt=2**53)
    name: str = Field(min_length=1)
    time_zone: str
    installation_date: str | None = None
    # The grid connection's limits in W at the site meter (+ import, - export), served in
    # site_info as max/min_site_meter_power_ac; unknown unless configured (docs/api.md "site_info").
    max_site_meter_power_w: int | None = Field(None, ge=0)
    min_site_meter_power_w: int | None = Field(None, le=0)
    # The site's position (WGS84 degrees): where the storm watch asks for alerts, and the
    # planner's clear-sky PV model.
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    storm_watch: StormWatch = StormWatch()
    # A test-mode site: only `token issue --env test` tokens reach it, and `serve` runs the
    # simulator devices its devices name (docs/api.md "Sandbox sites").
    sandbox: bool = False
    planner: PlannerConfig = PlannerConfig()
    devices: list[DeviceConfig] = Field(min_length=1)
    chargers: list[ChargePointConfig] = Field(default_factory=list, max_length=64)  # OCPP

    @field_validator("time_zone")
    @classmethod
    def _iana(cls, value: str) -> str:
        if value not in _KNOWN_ZONES:
            raise ValueError(f"{value!r} is not an IANA time zone")
        return value

    @model_validator(mode="after")
    def _unique_device_names(self) -> SiteConfig:
        names = [d.name for d in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate device names: {', '.join(dupes)}")
        if self.storm_watch.nws is not None and (self.latitude is None or self.longitude is None):
            raise ValueError("storm_watch.nws needs the site's latitude and longitude")
        return self

    @model_validator(mode="after")
    def _sandbox_is_simulated(self) -> SiteConfig:
        real = [d.name for d in self.devices if d.simulated is None]
        if self.sandbox and real:
            raise ValueError(f"a sandbox site is served by the built-in simulator: give every "
                             f"device simulated: HOME/DEVICE (missing on {', '.join(real)})")
        return self


#: Top-level sections other programs read from the same file: the gateway accepts and ignores
#: them (``simulator:`` is read by the CLI's demo, simulate and check-config).
FOREIGN_SECTIONS = ("simulator",)


class MqttLink(_Strict):
    """An MQTT broker connection (the edge's uplink, the hub's subscription; docs/hub.md)."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None  # TLS: the broker's CA (default: the system's)
    cert_file: Path | None = None  # TLS client certificate instead of username/password
    key_file: Path | None = None
    base_topic: str = Field("energy-gateway/v1", min_length=1, pattern=r"^[A-Za-z0-9._/-]+$")
    keepalive_s: int = Field(30, ge=5, le=3600)

    check_host = field_validator("host")(valid_host)


class UplinkSection(MqttLink):
    """``uplink:``: this gateway's sites published to a hub's broker (off unless present)."""

    gateway_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    live_every_s: float = Field(10.0, gt=0, le=3600)  # live_status at least this often


class Config(_Strict):
    """The gateway's configuration (a file's ``simulator:`` section is not part of it)."""

    gateway: GatewaySection = Field(default_factory=GatewaySection)
    sites: list[SiteConfig] = Field(min_length=1)
    uplink: UplinkSection | None = None
    # Home Assistant discovery on an MQTT broker (docs/home-assistant.md); none by default.
    mqtt_northbound: MqttNorthbound | None = None

    @model_validator(mode="before")
    @classmethod
    def _without_foreign_sections(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(key in data for key in FOREIGN_SECTIONS):
            return {k: v for k, v in data.items() if k not in FOREIGN_SECTIONS}
        return data

    @model_validator(mode="after")
    def _unique_site_ids(self) -> Config:
        ids = [s.energy_site_id for s in self.sites]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate energy_site_id: {', '.join(map(str, dupes))}")
        cps = [c.id for s in self.sites for c in s.chargers]
        twice = sorted({i for i in cps if cps.count(i) > 1})
        if twice:
            raise ValueError(f"charge point id on more than one site or twice: {', '.join(twice)}")
        return self

    def jwt_secret(self) -> str:
        """The token signing secret: the environment wins over the file; never a built-in value."""
        secret = os.environ.get(JWT_SECRET_ENV) or self.gateway.jwt_secret
        if not secret:
            raise ConfigError([f"no JWT secret; {SECRET_FIX}"])
        return secret

    def site(self, energy_site_id: int) -> SiteConfig:
        """The site with this id (KeyError when absent)."""
        for site in self.sites:
            if site.energy_site_id == energy_site_id:
                return site
        raise KeyError(energy_site_id)


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration for a purpose, at a key path."""

    loc: Loc
    message: str
    severity: Severity = "error"
