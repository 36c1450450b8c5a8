"""Storm watch, pure: alert feeds parsed into ``StormAlert``s and combined into the site's active ones."""

from __future__ import annotations

from gateway.core.storm.alerts import (
    DEFAULT_EVENTS,
    MAX_ALERTS_PER_SOURCE,
    FeedError,
    StormAlert,
    StormEpisode,
    active_alerts,
    alerts_from_json,
    alerts_to_json,
    episode_at,
    primary,
)
from gateway.core.storm.mqtt import MAX_PAYLOAD_BYTES, parse_mqtt_payload
from gateway.core.storm.nws import (
    MAX_BODY_BYTES,
    MAX_FEATURES,
    NwsParse,
    nws_point,
    parse_nws,
    retry_after_s,
)

__all__ = [
    "DEFAULT_EVENTS",
    "MAX_ALERTS_PER_SOURCE",
    "MAX_BODY_BYTES",
    "MAX_FEATURES",
    "MAX_PAYLOAD_BYTES",
    "FeedError",
    "NwsParse",
    "StormAlert",
    "StormEpisode",
    "active_alerts",
    "alerts_from_json",
    "alerts_to_json",
    "episode_at",
    "nws_point",
    "parse_mqtt_payload",
    "parse_nws",
    "primary",
    "retry_after_s",
]
