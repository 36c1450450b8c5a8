"""A config section that follows one MQTT topic filter on some broker, with that broker's login."""

from __future__ import annotations

from pydantic import Field, field_validator

from drivers.mqtt_login import BrokerLoginOptions
from drivers.topics import valid_filter


class BrokerTopic(BrokerLoginOptions):
    """``host``/``port``, a ``topic`` filter and ``qos``; ``username``/``password``/``tls`` the
    broker's login as for MQTT devices (docs/drivers.md)."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic: str = Field(min_length=1, max_length=512)
    qos: int = Field(1, ge=0, le=2)

    @field_validator("topic")
    @classmethod
    def _filter(cls, value: str) -> str:
        if not valid_filter(value):
            raise ValueError(f"{value!r} is not a valid MQTT topic filter")
        return value
