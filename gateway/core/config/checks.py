"""Deployment checks: what `serve`, `demo` and `check-config` refuse in a configuration meant to run."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.core.config.loading import (
    _document,
    _where,
    key_path,
)
from gateway.core.config.models import (
    JWT_SECRET_ENV,
    MIN_SECRET_BYTES,
    PUBLISHED_SECRETS,
    SECRET_FIX,
    Config,
    Loc,
    Problem,
)
from gateway.core.config.storm import NWS_URL, NwsSource

# ---- deployment checks: what `serve`, `demo` and `check-config` refuse -------------------------
# The models accept what tests need (port 0 for an ephemeral port, sub-second intervals); these
# checks judge a configuration meant to run for real.

Purpose = Literal["serve", "demo"]

# (lowest, highest) seconds: outside them a value is a typo (0.0001 for 1) or a stalled gateway
BOUNDS_S: dict[str, tuple[float, float]] = {
    "command_timeout_s": (0.5, 300.0),
    "reconcile_interval_s": (1.0, 86_400.0),
    "poll_interval_s": (0.1, 3600.0),
    "stale_after_s": (0.5, 86_400.0),
}
DRIVER_BOUNDS_S = (0.1, 600.0)  # any driver option ending in _s: timeouts, keepalives


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
    if gw.ocpp is not None:
        if gw.ocpp.port == 0:
            problems.append(Problem(("gateway", "ocpp", "port"), "0 picks a random free port no "
                                    "charge point can find; choose a port from 1 to 65535"))
        else:
            gateway_side.append(Listener(("gateway", "ocpp", "port"), gw.ocpp.host, gw.ocpp.port))
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


#: api.weather.gov asks clients to poll no more often than this (its alerts update about as often).
NWS_MIN_POLL_S = 30.0


def _storm_problems(config: Config) -> list[Problem]:
    """The real NWS API's terms: a contact in the User-Agent, no faster polling than 30 s."""
    problems: list[Problem] = []
    default_agent = NwsSource.model_fields["user_agent"].default
    for s, site in enumerate(config.sites):
        nws = site.storm_watch.nws
        if nws is None or nws.base_url != NWS_URL:
            continue
        key: Loc = ("sites", s, "storm_watch", "nws")
        if nws.poll_interval_s < NWS_MIN_POLL_S:
            problems.append(Problem((*key, "poll_interval_s"),
                                    f"{_fmt_s(nws.poll_interval_s)} s is faster than "
                                    f"api.weather.gov allows (once every {_fmt_s(NWS_MIN_POLL_S)} s)"))
        if nws.user_agent == default_agent:
            problems.append(Problem((*key, "user_agent"),
                                    "api.weather.gov asks for a contact in the User-Agent, e.g. "
                                    "\"energy-gateway (you@example.com)\"", "warning"))
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
    if config.gateway.clock.source == "simulator":
        # a test bench setting: a real site's tariff periods and history on simulated time
        where = "the demo follows its own simulator and does not read it" if purpose == "demo" \
            else "tariff periods, history and the journal run on simulated time"
        problems.append(Problem(("gateway", "clock", "source"),
                                f"the gateway follows the simulator clock at "
                                f"{config.gateway.clock.url}: {where}", "warning"))
    return problems + _port_problems(config, others) + _bound_problems(config) \
        + _charger_problems(config) + _storm_problems(config)


def _charger_problems(config: Config) -> list[Problem]:
    """Chargers configured without a central system, or open to a network without a password."""
    ocpp = config.gateway.ocpp
    problems: list[Problem] = []
    for s, site in enumerate(config.sites):
        for c, charger in enumerate(site.chargers):
            key: Loc = ("sites", s, "chargers", c)
            if ocpp is None:
                problems.append(Problem(key, "no gateway.ocpp section: no central system runs, "
                                             "this charge point cannot connect", "warning"))
            elif charger.password is None and not _loopback(ocpp.host):
                problems.append(Problem((*key, "id"), f"{charger.id!r} has no password and "
                                        f"gateway.ocpp.host {ocpp.host!r} is not loopback: anyone "
                                        "who knows the id can connect as it", "warning"))
    return problems


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def locate(problems: Sequence[Problem], text: str) -> list[str]:
    """Each problem as ``line N: key.path: message``, with the line of its key in ``text``."""
    lines = _document(text, "<config>").lines
    return [f"{_where(p.loc, lines)}: {key_path(p.loc)}: {p.message}" for p in problems]
