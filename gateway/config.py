"""Configuration: YAML parsed into pydantic models; every error names the key path and its line."""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.config import SimulatorConfig

# Known once, at import: validating a zone by loading it would read tz files, and configs are
# also parsed inside a running event loop (tests, reloads), where blocking I/O is a bug.
_KNOWN_ZONES = frozenset(zoneinfo.available_timezones()) | {"UTC"}
JWT_SECRET_ENV = "ENERGY_GATEWAY_JWT_SECRET"  # noqa: S105 - the variable name, not a secret


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


class GatewaySection(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("data")
    jwt_secret: str | None = Field(None, min_length=32)  # RFC 7518: >= 256 bits for HS256
    rate_limits: RateLimits = RateLimits()
    command_timeout_s: float = Field(5.0, gt=0)
    proxy_host: str = "127.0.0.1"  # where device proxies (``proxy_port``) listen
    reconcile_interval_s: float = Field(30.0, gt=0)
    journal_retention_days: int = Field(90, ge=1, le=36500)  # command journal entries kept


class DeviceConfig(BaseModel):
    """One device of a site: the common keys here, the driver's own keys beside them."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    type: str
    poll_interval_s: float = Field(1.0, gt=0)
    stale_after_s: float | None = Field(None, gt=0)
    simulated: str | None = None
    # Modbus TCP proxy: third parties (Home Assistant, evcc, loggers) share the gateway's one
    # connection to this device on this port; read-only unless proxy_writes.
    proxy_port: int | None = Field(None, ge=0, le=65535)
    proxy_writes: bool = False

    @property
    def options(self) -> dict[str, Any]:
        """The driver-specific keys (validated by the driver's options model)."""
        return dict(self.model_extra or {})

    @property
    def stale_limit_s(self) -> float:
        """Age after which this device's telemetry is no longer served (default 5 polls, >= 3 s)."""
        return self.stale_after_s or max(3.0, 5 * self.poll_interval_s)

    @model_validator(mode="after")
    def _driver_options(self) -> DeviceConfig:
        from drivers import DRIVERS  # deferred: drivers import their transports

        driver = DRIVERS.get(self.type)
        if driver is None:
            raise ValueError(
                f"unknown device type {self.type!r}; valid types: {', '.join(sorted(DRIVERS))}"
            )
        options = driver.options_model.model_validate(self.options)
        if self.proxy_port is not None and not all(
                hasattr(options, key) for key in ("host", "port", "unit_id")):
            raise ValueError(f"proxy_port needs a Modbus TCP device; {self.type!r} is not one")
        return self


class SiteConfig(_Strict):
    energy_site_id: int = Field(ge=1, lt=2**53)
    name: str = Field(min_length=1)
    time_zone: str
    installation_date: str | None = None
    devices: list[DeviceConfig] = Field(min_length=1)

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
        return self


class Config(_Strict):
    """The whole configuration file."""

    gateway: GatewaySection = GatewaySection()
    sites: list[SiteConfig] = Field(min_length=1)
    simulator: SimulatorConfig | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        ids = [s.energy_site_id for s in self.sites]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate energy_site_id: {', '.join(map(str, dupes))}")
        refs = {
            f"{home.id}/{dev.id}" for home in (self.simulator.homes if self.simulator else [])
            for dev in home.devices
        }
        for site in self.sites:
            for dev in site.devices:
                if dev.simulated is not None and dev.simulated not in refs:
                    raise ValueError(
                        f"site {site.energy_site_id} device {dev.name!r}: simulated device "
                        f"{dev.simulated!r} is not defined under simulator.homes"
                    )
        return self

    def jwt_secret(self) -> str:
        """The token signing secret: the environment wins over the file; never a built-in value."""
        secret = os.environ.get(JWT_SECRET_ENV) or self.gateway.jwt_secret
        if not secret:
            raise ConfigError([f"no JWT secret: set gateway.jwt_secret or {JWT_SECRET_ENV}"])
        return secret

    def site(self, energy_site_id: int) -> SiteConfig:
        """The site with this id (KeyError when absent)."""
        for site in self.sites:
            if site.energy_site_id == energy_site_id:
                return site
        raise KeyError(energy_site_id)


@dataclass(frozen=True)
class _Located:
    line: int
    column: int


def _index_lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], _Located]) -> None:
    out[path] = _Located(node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = _Located(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _index_lines(value_node, (*path, key), out)
            # keep the key's own line for "unexpected key" errors
            out[(*path, key)] = _Located(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), out)


def _where(loc: tuple[Any, ...], lines: Mapping[tuple[Any, ...], _Located]) -> str:
    for cut in range(len(loc), -1, -1):
        found = lines.get(tuple(loc[:cut]))
        if found is not None:
            return f"line {found.line}"
    return "line ?"


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse YAML text into a Config, or raise ConfigError naming each bad key and its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "line ?"
        raise ConfigError([f"{where}: invalid YAML: {exc}"], source) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(["line 1: the configuration must be a mapping"], source)
    lines: dict[tuple[Any, ...], _Located] = {}
    _index_lines(node, (), lines)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            # pydantic inserts validator names (e.g. "function-after[...]") into loc; drop them
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{_where(loc, lines)}: {_dotted(loc)}: {msg}")
        raise ConfigError(problems, source) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and parse a configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"], str(p)) from None
    return parse_config(text, str(p))
