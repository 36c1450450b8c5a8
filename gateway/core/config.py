"""Configuration: YAML parsed into pydantic models; every error names the key path and its line."""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.options import DRIVER_OPTIONS
from simulator.config import SimulatorConfig

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
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class ConfigError(Exception):
    """A configuration problem, each line naming a key path and where it is in the file."""

    def __init__(self, problems: Sequence[str], source: str = "<config>") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


def host_problem(host: str) -> str | None:
    """Why ``host`` is neither an IP address nor an RFC 1123 host name (None when it is one)."""
    if not host.strip():
        return "is empty; give an address such as 127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    name = host.removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels) \
            or labels[-1].isdigit():  # 999.1.1.1 is a broken address, not a name
        return f"{host!r} is neither an IP address nor a valid host name"
    return None


def _valid_host(value: str) -> str:
    problem = host_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


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

    check_hosts = field_validator("host", "proxy_host")(_valid_host)


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
        model = DRIVER_OPTIONS.get(self.type)
        if model is None:
            raise ValueError(
                f"unknown device type {self.type!r}; valid types: {', '.join(sorted(DRIVER_OPTIONS))}"
            )
        options = model.model_validate(self.options)
        host = getattr(options, "host", None)
        if isinstance(host, str) and (problem := host_problem(host)) is not None:
            raise ValueError(f"host {problem}")
        if self.proxy_port is not None and not all(
                hasattr(options, key) for key in ("host", "port", "unit_id")):
            raise ValueError(f"proxy_port needs a Modbus TCP device; {self.type!r} is not one")
        return self


class SiteConfig(_Strict):
    energy_site_id: int = Field(ge=1, lt=2**53)
    name: str = Field(min_length=1)
    time_zone: str
    installation_date: str | None = None
    # The grid connection's limits in W at the site meter (+ import, - export), served in
    # site_info as max/min_site_meter_power_ac; unknown unless configured (docs/api.md "site_info").
    max_site_meter_power_w: int | None = Field(None, ge=0)
    min_site_meter_power_w: int | None = Field(None, le=0)
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
            raise ConfigError([f"no JWT secret; {SECRET_FIX}"])
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


def _yaml_problem(exc: yaml.YAMLError, source: str) -> str:
    """One line naming where the YAML broke; PyYAML's own text says ``"<unicode string>"``."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        text = f"line {mark.line + 1}: invalid YAML at column {mark.column + 1}: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            text += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        return text
    flat = " ".join(str(exc).split()).replace('"<unicode string>"', repr(source))
    return f"line ?: invalid YAML: {flat}"


def _line_index(node: yaml.Node) -> dict[tuple[Any, ...], _Located]:
    lines: dict[tuple[Any, ...], _Located] = {}
    _index_lines(node, (), lines)
    return lines


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse YAML text into a Config, or raise ConfigError naming each bad key and its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc, source)], source) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(["line 1: the configuration must be a mapping"], source)
    lines = _line_index(node)
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
    return read_config(path)[0]


# ---- deployment checks: what `serve`, `demo` and `check-config` refuse -------------------------
# The models accept what tests need (port 0 for an ephemeral port, sub-second intervals); these
# checks judge a configuration meant to run for real.

Purpose = Literal["serve", "demo"]
Severity = Literal["error", "warning"]

# (lowest, highest) seconds: outside them a value is a typo (0.0001 for 1) or a stalled gateway
BOUNDS_S: dict[str, tuple[float, float]] = {
    "command_timeout_s": (0.5, 300.0),
    "reconcile_interval_s": (1.0, 86_400.0),
    "poll_interval_s": (0.1, 3600.0),
    "stale_after_s": (0.5, 86_400.0),
}
DRIVER_BOUNDS_S = (0.1, 600.0)  # any driver option ending in _s: timeouts, keepalives


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration for a purpose, at a key path."""

    loc: tuple[str | int, ...]
    message: str
    severity: Severity = "error"


@dataclass(frozen=True)
class _Listener:
    key: tuple[str | int, ...]
    host: str
    port: int


def secret_problem(secret: str | None, *, from_env: bool) -> str | None:
    """Why this JWT secret must not sign tokens for a served gateway (None when it may)."""
    which = f"the secret in {JWT_SECRET_ENV} (it overrides gateway.jwt_secret)" if from_env \
        else "the secret"
    if not secret:
        return f"no JWT secret; {SECRET_FIX}"
    if secret in PUBLISHED_SECRETS:
        return (f"{which} is the example published in config.example.yaml: anyone can sign "
                f"tokens with it; {SECRET_FIX}")
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        return (f"{which} is {size} bytes, HS256 needs at least {MIN_SECRET_BYTES}; "
                f"{SECRET_FIX}")
    return None


def effective_secret(config: Config, env_secret: str | None) -> tuple[str | None, bool]:
    """The secret a gateway would sign with and whether it came from the environment."""
    if env_secret:
        return env_secret, True
    return config.gateway.jwt_secret, False


def _fmt_s(value: float) -> str:
    return f"{value:g}"


def _bounds(loc: tuple[str | int, ...], value: float | None, low: float, high: float) -> list[Problem]:
    if value is None or low <= value <= high:
        return []
    return [Problem(loc, f"{_fmt_s(value)} s is out of range; allowed {_fmt_s(low)} to "
                         f"{_fmt_s(high)} s")]


def _hosts_overlap(a: str, b: str) -> bool:
    """Whether two bind addresses can claim the same port (names and wildcards may)."""
    try:
        ip_a, ip_b = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return True  # a name such as localhost: assume it can be the other address
    return ip_a == ip_b or ip_a.is_unspecified or ip_b.is_unspecified


def _simulator_listeners(sim: SimulatorConfig) -> Iterator[_Listener]:
    if sim.control.port:
        yield _Listener(("simulator", "control", "port"), sim.control.host, sim.control.port)
    for h, home in enumerate(sim.homes):
        for d, dev in enumerate(home.devices):
            key: tuple[str | int, ...] = ("simulator", "homes", h, "devices", d)
            if dev.kind == "mqtt_battery":
                continue  # a client of a broker: it listens on nothing
            if dev.port:
                yield _Listener((*key, "port"), dev.host, dev.port)
            modbus_port = getattr(dev, "modbus_port", None)
            if modbus_port:
                yield _Listener((*key, "modbus_port"), dev.host, modbus_port)


def _port_problems(config: Config) -> list[Problem]:
    gw = config.gateway
    problems: list[Problem] = []
    if gw.port == 0:
        problems.append(Problem(("gateway", "port"), "0 picks a random free port no client can "
                                                     "find; choose a port from 1 to 65535"))
    gateway_side = [_Listener(("gateway", "port"), gw.host, gw.port)] if gw.port else []
    for s, site in enumerate(config.sites):
        for d, dev in enumerate(site.devices):
            key: tuple[str | int, ...] = ("sites", s, "devices", d, "proxy_port")
            if dev.proxy_port == 0:
                problems.append(Problem(key, "0 picks a random free port no client can find; "
                                             "choose a port from 1 to 65535"))
            elif dev.proxy_port is not None:
                gateway_side.append(_Listener(key, gw.proxy_host, dev.proxy_port))
    listeners = gateway_side + list(_simulator_listeners(config.simulator) if config.simulator
                                    else [])
    for i, later in enumerate(listeners):
        for earlier in listeners[:i]:
            if later.port == earlier.port and _hosts_overlap(later.host, earlier.host):
                problems.append(Problem(later.key, f"port {later.port} is already taken by "
                                                   f"{_dotted(earlier.key)}"))
                break
    # a device the gateway connects to at one of its own listening ports: it would talk to itself
    for s, site in enumerate(config.sites):
        for d, dev in enumerate(site.devices):
            host, port = dev.options.get("host"), dev.options.get("port")
            for listener in gateway_side:
                if port == listener.port and isinstance(host, str) \
                        and _hosts_overlap(host, listener.host):
                    problems.append(Problem(("sites", s, "devices", d, "port"),
                                            f"{host}:{port} is the gateway's own "
                                            f"{_dotted(listener.key)}, not a device"))
    return problems


def _bound_problems(config: Config) -> list[Problem]:
    gw = config.gateway
    problems = [
        *_bounds(("gateway", "command_timeout_s"), gw.command_timeout_s,
                 *BOUNDS_S["command_timeout_s"]),
        *_bounds(("gateway", "reconcile_interval_s"), gw.reconcile_interval_s,
                 *BOUNDS_S["reconcile_interval_s"]),
    ]
    for s, site in enumerate(config.sites):
        for d, dev in enumerate(site.devices):
            key: tuple[str | int, ...] = ("sites", s, "devices", d)
            problems += _bounds((*key, "poll_interval_s"), dev.poll_interval_s,
                                *BOUNDS_S["poll_interval_s"])
            problems += _bounds((*key, "stale_after_s"), dev.stale_after_s,
                                *BOUNDS_S["stale_after_s"])
            if dev.stale_after_s is not None and dev.stale_after_s < dev.poll_interval_s:
                problems.append(Problem((*key, "stale_after_s"),
                                        f"{_fmt_s(dev.stale_after_s)} s is shorter than "
                                        f"poll_interval_s ({_fmt_s(dev.poll_interval_s)} s): the "
                                        "device would always look offline"))
            for name, value in sorted(dev.options.items()):
                if name.endswith("_s") and isinstance(value, int | float) \
                        and not isinstance(value, bool):
                    problems += _bounds((*key, name), float(value), *DRIVER_BOUNDS_S)
    return problems


def deployment_problems(config: Config, *, purpose: Purpose, env_secret: str | None) -> list[Problem]:
    """What stops ``config`` from running for ``purpose``: errors, and warnings worth a word.

    ``env_secret`` is the value of ``ENERGY_GATEWAY_JWT_SECRET`` (the environment wins over
    the file). ``demo`` signs with a per-run secret when the configured one is unfit, so there
    the secret is only a warning.
    """
    problems: list[Problem] = []
    secret, from_env = effective_secret(config, env_secret)
    why = secret_problem(secret, from_env=from_env)
    if why is not None and purpose == "serve":
        problems.append(Problem(("gateway", "jwt_secret"), why))
    elif why is not None:
        problems.append(Problem(("gateway", "jwt_secret"), f"{why} (an error for serve; the demo "
                                                           "signs with a per-run secret)", "warning"))
    return problems + _port_problems(config) + _bound_problems(config)


def locate(problems: Sequence[Problem], text: str) -> list[str]:
    """Each problem as ``line N: key.path: message``, with the line of its key in ``text``."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines = _line_index(node) if node is not None else {}
    return [f"{_where(p.loc, lines)}: {_dotted(p.loc)}: {p.message}" for p in problems]


def read_config(path: str | os.PathLike[str]) -> tuple[Config, str]:
    """A configuration file parsed, with its text (for locating later problems)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"cannot read: {reason}"], str(p)) from None
    return parse_config(text, str(p)), text
