"""The per-site ``planner:`` config section: horizon, step, wear cost, optional feeds and PV size."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.core.config.broker_topic import BrokerTopic
from gateway.core.planner import DEFAULT_WEAR_COST_PER_KWH


class FeedConfig(BaseModel):
    """An external JSON feed polled over HTTP (docs/planner.md, "Feeds")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2000)
    refresh_s: float = Field(default=900.0, ge=1, le=86400)
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class MqttFeedConfig(BrokerTopic):
    """A price feed published on one MQTT topic (retained, best): the same JSON as over HTTP."""

    @field_validator("topic")
    @classmethod
    def _one_topic(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError(f"{value!r} is not one MQTT topic (no wildcards)")
        return value


class PlannerConfig(BaseModel):
    """How ``autonomous`` plans (every key optional; docs/planner.md).

    ``strategy: optimiser`` plans with forecasts; ``tou_rule`` keeps the two-level tariff rule
    (the earlier behaviour, kept as a baseline).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["optimiser", "tou_rule"] = "optimiser"
    horizon_h: float = Field(default=24.0, ge=6, le=48)
    step_min: int = Field(default=30, ge=5, le=60)
    wear_cost_per_kwh: float = Field(default=DEFAULT_WEAR_COST_PER_KWH, ge=0, le=5)
    pv_kw: float | None = Field(default=None, ge=0, le=1000)
    round_trip_efficiency: float = Field(default=0.9, gt=0.5, le=1.0)
    price_feed: FeedConfig | None = None
    price_feed_mqtt: MqttFeedConfig | None = None
    pv_forecast: FeedConfig | None = None

    @model_validator(mode="after")
    def _one_price_feed(self) -> PlannerConfig:
        if self.price_feed is not None and self.price_feed_mqtt is not None:
            raise ValueError("price_feed and price_feed_mqtt: set one of them")
        return self

    @field_validator("step_min")
    @classmethod
    def _divides_the_hour(cls, value: int) -> int:
        if 60 % value:
            raise ValueError("must divide the hour (5, 10, 15, 20, 30 or 60)")
        return value

    @property
    def steps(self) -> int:
        """Steps in the horizon."""
        return round(self.horizon_h * 60 / self.step_min)
