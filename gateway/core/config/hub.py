"""The hub's configuration file (``hub:``): listen address, secrets, PostgreSQL, Redis, broker."""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, ValidationError, field_validator

from gateway.core.config.hosts import valid_host
from gateway.core.config.loading import _document, _problems
from gateway.core.config.models import (
    JWT_SECRET_ENV,
    SECRET_FIX,
    ConfigError,
    MqttLink,
    RateLimits,
    _Strict,
)


class HubSection(_Strict):
    """``hub:``: one replica's settings; every replica of a deployment reads the same file."""

    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)
    jwt_secret: str | None = Field(None, min_length=32)
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/energy_hub"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = Field("egw-hub:", max_length=64)  # every key this hub writes starts so
    rate_limits: RateLimits = RateLimits()
    mqtt: MqttLink = MqttLink()
    command_timeout_s: float = Field(10.0, gt=0, le=300)  # wait for an edge's outcome (then 504)
    shared_group: str | None = Field("hub", pattern=r"^[A-Za-z0-9_-]{1,32}$")

    check_host = field_validator("host")(valid_host)


class HubConfig(_Strict):
    """A hub configuration file."""

    hub: HubSection

    def jwt_secret(self) -> str:
        """The token signing secret: the environment wins over the file."""
        secret = os.environ.get(JWT_SECRET_ENV) or self.hub.jwt_secret
        if not secret:
            raise ConfigError([f"no JWT secret; {SECRET_FIX.replace('gateway.', 'hub.')}"])
        return secret


def is_hub_config(data: Any) -> bool:
    """Whether parsed YAML is a hub file (a top-level ``hub:`` and no ``sites:``)."""
    return isinstance(data, dict) and "hub" in data and "sites" not in data


def parse_hub_config(text: str, source: str = "<hub config>") -> HubConfig:
    """Parse a hub file, or raise ConfigError naming each bad key and its line."""
    doc = _document(text, source)
    try:
        return HubConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, doc.lines, doc.data), source) from None
