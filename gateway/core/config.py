"""Configuration: YAML parsed into pydantic models; every error names the key path and its line."""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.options import DRIVER_OPTIONS

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
Loc = tuple[str | int, ...]  # a key path in the file: ("sites", 0, "devices", 1, "options", "port")
_M = TypeVar("_M", bound=BaseModel)


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


#: Top-level sections other programs read from the same file: the gateway accepts and ignores
#: them (``simulator:`` is read by the CLI's demo, simulate and check-config).
FOREIGN_SECTIONS = ("simulator",)


class Config(_Strict):
    """The gateway's configuration (a file's ``simulator:`` section is not part of it)."""

    gateway: GatewaySection = GatewaySection()
    sites: list[SiteConfig] = Field(min_length=1)

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


def _index_lines(node: yaml.Node, path: Loc, out: dict[Loc, _Located]) -> None:
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


def _where(loc: Loc, lines: Mapping[Loc, _Located]) -> str:
    for cut in range(len(loc), -1, -1):
        found = lines.get(tuple(loc[:cut]))
        if found is not None:
            return f"line {found.line}"
    return "line ?"


def key_path(loc: Loc) -> str:
    """A key path as written in messages: ``sites[0].devices[1].options.port``."""
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


def _line_index(node: yaml.Node) -> dict[Loc, _Located]:
    lines: dict[Loc, _Located] = {}
    _index_lines(node, (), lines)
    return lines


# ---- the flat form of driver options (deprecated) ---------------------------------------------
# Until issue 10 a device's driver options sat beside name and type. Such a device still loads:
# its driver keys move under options, and each move is reported so the file can be updated.

FLAT_FORM = ("driver options beside name and type are deprecated: they go under the device's "
             "options: key (this file still loads)")


@dataclass(frozen=True)
class Deprecation:
    """A key of the deprecated flat form: where it is written and where it belongs now."""

    line: int
    key: str  # e.g. sites[0].devices[0].port
    moved_to: str | None  # e.g. sites[0].devices[0].options.port; None when the key stays
    note: str = ""

    def __str__(self) -> str:
        if self.moved_to is not None:
            return f"line {self.line}: {self.key} -> {self.moved_to}"
        return f"line {self.line}: {self.key}: {self.note}"


@dataclass(frozen=True)
class _Move:
    old: Loc
    new: Loc | None
    note: str = ""


def _flat_device(dev: Any, at: Loc) -> tuple[Any, list[_Move]]:
    """A device in the flat form rewritten with ``options:``, and what moved (pure)."""
    if not isinstance(dev, dict) or "options" in dev or dev.get("type") not in DRIVER_OPTIONS:
        return dev, []  # nested already, or nothing to judge options by
    kind = dev["type"]
    fields = DRIVER_OPTIONS[kind].model_fields
    flat = [key for key in dev if key in fields and key not in DEVICE_KEYS]
    if not flat:
        return dev, []
    moves = [_Move((*at, key), (*at, "options", key)) for key in flat]
    # a key both the gateway and the driver have: in the flat form it always was the gateway's
    moves += [_Move((*at, key), None, f"stays the gateway's key; the {kind} driver's own "
                                      f"{key} goes to {key_path((*at, 'options', key))}")
              for key in dev if key in fields and key in DEVICE_KEYS]
    nested = {key: value for key, value in dev.items() if key not in flat}
    nested["options"] = {key: dev[key] for key in flat}
    return nested, moves


def _nest_flat_options(data: dict[str, Any]) -> tuple[dict[str, Any], list[_Move]]:
    """``data`` with every flat-form device nested, and the keys that moved (pure)."""
    sites = data.get("sites")
    if not isinstance(sites, list):
        return data, []
    moves: list[_Move] = []
    new_sites: list[Any] = []
    for s, site in enumerate(sites):
        devices = site.get("devices") if isinstance(site, dict) else None
        if not isinstance(devices, list):
            new_sites.append(site)
            continue
        new_devices = []
        for d, dev in enumerate(devices):
            nested, moved = _flat_device(dev, ("sites", s, "devices", d))
            new_devices.append(nested)
            moves += moved
        new_sites.append({**site, "devices": new_devices})
    return ({**data, "sites": new_sites} if moves else data), moves


def _moved_lines(lines: Mapping[Loc, _Located], moves: Sequence[_Move]) -> dict[Loc, _Located]:
    """The line index with each moved key (and all below it) also under its new path."""
    out = dict(lines)
    # a moved key is always ("sites", s, "devices", d, key): one pass over the index
    new_of = {move.old: move.new for move in moves if move.new is not None}
    for new in new_of.values():
        device = new[:-2]
        if device in lines:
            out.setdefault((*device, "options"), lines[device])
    for path, where in lines.items():
        moved_to = new_of.get(path[:5])
        if moved_to is not None:
            out[moved_to + path[5:]] = where
    return out


def _mixed_form(loc: Loc, data: Mapping[str, Any]) -> str | None:
    """For a driver option written beside a device's ``options:``, how to move it (else None)."""
    if len(loc) != 5 or loc[0] != "sites" or loc[2] != "devices" or not isinstance(loc[4], str):
        return None
    try:
        dev = data["sites"][loc[1]]["devices"][loc[3]]
        model = DRIVER_OPTIONS[dev["type"]]
    except (KeyError, IndexError, TypeError):
        return None
    if loc[4] not in model.model_fields:
        return None
    return (f"a {dev['type']} driver option outside options:; move it to "
            f"{key_path((*loc[:4], 'options', loc[4]))} (the old flat form loads only when a "
            "device has no options: key)")


def _problems(exc: ValidationError, lines: Mapping[Loc, _Located], data: Mapping[str, Any],
              prefix: Loc = ()) -> list[str]:
    problems = []
    for err in exc.errors():
        # pydantic inserts validator names and union tags ("function-after[...]",
        # "options[sunspec]") into loc; drop them
        loc = (*prefix, *(p for p in err["loc"] if not (isinstance(p, str) and "[" in p)))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = _mixed_form(loc, data) or msg
        problems.append(f"{_where(loc, lines)}: {key_path(loc)}: {msg}")
    return problems


@dataclass(frozen=True)
class _Document:
    """A configuration file's YAML: its data (flat-form devices nested) and where each key is."""

    data: dict[str, Any]
    lines: Mapping[Loc, _Located]
    moves: tuple[_Move, ...]


def _document(text: str, source: str) -> _Document:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc, source)], source) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(["line 1: the configuration must be a mapping"], source)
    lines = _line_index(node)
    data, moves = _nest_flat_options(data)
    return _Document(data, _moved_lines(lines, moves), tuple(moves))


@dataclass(frozen=True)
class LoadedConfig:
    """A parsed configuration file: the gateway's Config, its text, and its deprecated keys."""

    config: Config
    text: str
    source: str
    deprecations: tuple[Deprecation, ...]
    _document: _Document

    def section(self, key: str, model: type[_M]) -> _M | None:
        """Top-level section ``key`` validated with ``model`` (None when absent).

        For sections the gateway ignores (``simulator:``): their errors name the key path and
        line like the gateway's own.
        """
        if key not in self._document.data:
            return None
        try:
            return model.model_validate(self._document.data[key])
        except ValidationError as exc:
            raise ConfigError(_problems(exc, self._document.lines, self._document.data, (key,)),
                              self.source) from None

    def locate(self, problems: Sequence[Problem]) -> list[str]:
        """Each problem as ``line N: key.path: message``, with the line of its key."""
        return [f"{_where(p.loc, self._document.lines)}: {key_path(p.loc)}: {p.message}"
                for p in problems]


def parse(text: str, source: str = "<config>") -> LoadedConfig:
    """Parse YAML text, or raise ConfigError naming each bad key and its line."""
    doc = _document(text, source)
    try:
        config = Config.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, doc.lines, doc.data), source) from None
    deprecations = tuple(
        Deprecation(doc.lines[m.old].line if m.old in doc.lines else 0, key_path(m.old),
                    None if m.new is None else key_path(m.new), m.note)
        for m in doc.moves)
    return LoadedConfig(config, text, source, deprecations, doc)


def parse_config(text: str, source: str = "<config>") -> Config:
    """Parse YAML text into a Config, or raise ConfigError naming each bad key and its line."""
    return parse(text, source).config


def read_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and parse a configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"cannot read: {reason}"], str(p)) from None
    return parse(text, str(p))


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and parse a configuration file."""
    return read_config(path).config


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

    loc: Loc
    message: str
    severity: Severity = "error"


@dataclass(frozen=True)
class Listener:
    """A socket something started from this file listens on, and the key that chose its port."""

    key: Loc
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


def _bounds(loc: Loc, value: float | None, low: float, high: float) -> list[Problem]:
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


def _port_problems(config: Config, others: Sequence[Listener]) -> list[Problem]:
    gw = config.gateway
    problems: list[Problem] = []
    if gw.port == 0:
        problems.append(Problem(("gateway", "port"), "0 picks a random free port no client can "
                                                     "find; choose a port from 1 to 65535"))
    gateway_side = [Listener(("gateway", "port"), gw.host, gw.port)] if gw.port else []
    for s, site in enumerate(config.sites):
        for d, dev in enumerate(site.devices):
            key: Loc = ("sites", s, "devices", d, "proxy_port")
            if dev.proxy_port == 0:
                problems.append(Problem(key, "0 picks a random free port no client can find; "
                                             "choose a port from 1 to 65535"))
            elif dev.proxy_port is not None:
                gateway_side.append(Listener(key, gw.proxy_host, dev.proxy_port))
    listeners = gateway_side + list(others)
    for i, later in enumerate(listeners):
        for earlier in listeners[:i]:
            if later.port == earlier.port and _hosts_overlap(later.host, earlier.host):
                problems.append(Problem(later.key, f"port {later.port} is already taken by "
                                                   f"{key_path(earlier.key)}"))
                break
    # a device the gateway connects to at one of its own listening ports: it would talk to itself
    for s, site in enumerate(config.sites):
        for d, dev in enumerate(site.devices):
            host, port = getattr(dev.options, "host", None), getattr(dev.options, "port", None)
            for listener in gateway_side:
                if port == listener.port and isinstance(host, str) \
                        and _hosts_overlap(host, listener.host):
                    problems.append(Problem(("sites", s, "devices", d, "options", "port"),
                                            f"{host}:{port} is the gateway's own "
                                            f"{key_path(listener.key)}, not a device"))
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
            key: Loc = ("sites", s, "devices", d)
            problems += _bounds((*key, "poll_interval_s"), dev.poll_interval_s,
                                *BOUNDS_S["poll_interval_s"])
            problems += _bounds((*key, "stale_after_s"), dev.stale_after_s,
                                *BOUNDS_S["stale_after_s"])
            if dev.stale_after_s is not None and dev.stale_after_s < dev.poll_interval_s:
                problems.append(Problem((*key, "stale_after_s"),
                                        f"{_fmt_s(dev.stale_after_s)} s is shorter than "
                                        f"poll_interval_s ({_fmt_s(dev.poll_interval_s)} s): the "
                                        "device would always look offline"))
            for name in sorted(dev.options.model_fields_set):  # the driver's defaults are sane
                value = getattr(dev.options, name)
                if name.endswith("_s") and isinstance(value, int | float) \
                        and not isinstance(value, bool):
                    problems += _bounds((*key, "options", name), float(value), *DRIVER_BOUNDS_S)
    return problems


def deployment_problems(config: Config, *, purpose: Purpose, env_secret: str | None,
                        others: Sequence[Listener] = ()) -> list[Problem]:
    """What stops ``config`` from running for ``purpose``: errors, and warnings worth a word.

    ``env_secret`` is the value of ``ENERGY_GATEWAY_JWT_SECRET`` (the environment wins over
    the file). ``demo`` signs with a per-run secret when the configured one is unfit, so there
    the secret is only a warning. ``others``: what else started from the same file listens on
    (the simulator's servers for ``demo``); a port the gateway also takes is a clash.
    """
    problems: list[Problem] = []
    secret, from_env = effective_secret(config, env_secret)
    why = secret_problem(secret, from_env=from_env)
    if why is not None and purpose == "serve":
        problems.append(Problem(("gateway", "jwt_secret"), why))
    elif why is not None:
        problems.append(Problem(("gateway", "jwt_secret"), f"{why} (an error for serve; the demo "
                                                           "signs with a per-run secret)", "warning"))
    return problems + _port_problems(config, others) + _bound_problems(config)


def locate(problems: Sequence[Problem], text: str) -> list[str]:
    """Each problem as ``line N: key.path: message``, with the line of its key in ``text``."""
    lines = _document(text, "<config>").lines
    return [f"{_where(p.loc, lines)}: {key_path(p.loc)}: {p.message}" for p in problems]
