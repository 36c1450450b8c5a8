"""The ``mqtt_northbound:`` section: the broker Home Assistant listens on, and the gateway's topics."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from drivers.mqtt_login import BrokerLoginOptions
from drivers.topics import valid_topic
from gateway.core.config.hosts import valid_host

if TYPE_CHECKING:
    from gateway.core.config.models import Config, Loc, Problem

_SEGMENTS = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class MqttNorthbound(BrokerLoginOptions):
    """Publish every site to an MQTT broker with Home Assistant discovery (docs/home-assistant.md).

    ``host`` / ``port`` and the login keys (``username``, ``password``, ``tls``) reach the broker
    (on an edge box usually the local Mosquitto or Home Assistant's Mosquitto add-on).
    ``discovery_prefix``: Home Assistant's discovery prefix (its MQTT option of that name).
    ``base_topic``: where the gateway's own state, availability and command topics live; one
    per gateway on a broker. ``state_interval_s``: how often changed telemetry is published;
    ``energy_interval_s``: how often the energy counters are re-read from history.
    ``timeout_s``: connect and acknowledgement deadline; ``backoff_max_s``: the cap of the
    reconnect backoff.
    """

    host: str
    port: int = Field(1883, ge=1, le=65535)
    discovery_prefix: str = Field("homeassistant", min_length=1, max_length=128)
    base_topic: str = Field("energy-gateway", min_length=1, max_length=128)
    state_interval_s: float = Field(5.0, gt=0, le=3600)
    energy_interval_s: float = Field(60.0, gt=0, le=86_400)
    timeout_s: float = Field(5.0, gt=0, le=120)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)

    check_host = field_validator("host")(valid_host)

    @field_validator("discovery_prefix", "base_topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        # Letters, digits, _ and - between slashes: no wildcards, no empty levels, and nothing a
        # Home Assistant discovery topic would refuse.
        if not _SEGMENTS.match(value) or not valid_topic(value):
            raise ValueError(f"{value!r}: use letters, digits, '_' and '-' between single '/' "
                             "(no wildcards, no leading or trailing '/')")
        return value


def login_problems(config: Config, readable: Callable[[Path], bool]) -> list[Problem]:
    """What is wrong with the MQTT logins of ``config`` (devices, storm watch and price feeds
    over MQTT, the northbound bridge).

    ``readable(path)`` says whether a file can be read (the caller does the I/O): a TLS file
    that cannot be read is an error; TLS verification switched off, or a password sent without
    TLS to a host that is not this machine, are warnings.
    """
    clients: list[tuple[Loc, BrokerLoginOptions, str]] = []
    for s, site in enumerate(config.sites):
        for d, dev in enumerate(site.devices):
            if isinstance(dev.options, BrokerLoginOptions):
                clients.append((("sites", s, "devices", d, "options"), dev.options,
                                getattr(dev.options, "host", "")))
        if site.storm_watch.mqtt is not None:
            clients.append((("sites", s, "storm_watch", "mqtt"), site.storm_watch.mqtt,
                            site.storm_watch.mqtt.host))
        if site.planner.price_feed_mqtt is not None:
            clients.append((("sites", s, "planner", "price_feed_mqtt"), site.planner.price_feed_mqtt,
                            site.planner.price_feed_mqtt.host))
    if config.mqtt_northbound is not None:
        clients.append((("mqtt_northbound",), config.mqtt_northbound, config.mqtt_northbound.host))
    from gateway.core.config.models import Problem  # models imports this module

    problems: list[Problem] = []
    for loc, login, host in clients:
        tls = login.tls
        if tls is not None:
            for key, path in tls.files().items():
                if not readable(path):
                    problems.append(Problem((*loc, *key.split(".")), f"{path}: cannot be read"))
            if not tls.verify:
                problems.append(Problem((*loc, "tls", "verify"), "false accepts any broker "
                                        "certificate: give the broker's CA in tls.ca_file instead",
                                        "warning"))
        elif login.password is not None and not _loopback(host):
            problems.append(Problem((*loc, "password"), f"is sent in clear text to {host}: add a "
                                    "tls section (the broker's TLS port)", "warning"))
    return problems


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
