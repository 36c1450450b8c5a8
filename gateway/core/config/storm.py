"""The ``storm_watch:`` section of a site: which alert sources it follows (each optional)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.core.config.broker_topic import BrokerTopic
from gateway.core.storm import DEFAULT_EVENTS

if TYPE_CHECKING:  # models.py imports this module
    from gateway.core.config.models import Config

NWS_URL = "https://api.weather.gov"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NwsSource(_Strict):
    """The US National Weather Service alerts API, polled for the site's point.

    ``user_agent`` is required by the API (it answers 403 without one); NWS asks for a contact in
    it, e.g. ``"energy-gateway (you@example.com)"``.
    """

    base_url: str = NWS_URL
    poll_interval_s: float = Field(300.0, gt=0, le=86_400)
    timeout_s: float = Field(10.0, gt=0, le=120)
    events: tuple[str, ...] = Field(DEFAULT_EVENTS, min_length=1, max_length=100)
    user_agent: str = Field("energy-gateway storm watch", min_length=1, max_length=200)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query:
            raise ValueError(f"{value!r} is not an http(s) base URL such as {NWS_URL}")
        return value.rstrip("/")

    @field_validator("events")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not e.strip() or len(e) > 100 for e in value):
            raise ValueError("event names must be non-empty, at most 100 characters")
        return value


class MqttSource(BrokerTopic):
    """A topic (filter) carrying a storm flag (``true``/``false``) or a JSON alert (docs/api.md,
    "Storm watch")."""


class StormWatch(_Strict):
    """The site's alert sources; none configured means only the admin call (and a device's own
    reading, where its driver options name one) raise storm mode."""

    nws: NwsSource | None = None
    mqtt: MqttSource | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        """The names of the configured sources."""
        return tuple(name for name in ("nws", "mqtt") if getattr(self, name) is not None)


#: How often a demo site polls the simulator's alert feed: a raised alert shows within seconds.
DEMO_POLL_S = 2.0


def demo_storm_feed(
    config: Config, positions: Mapping[str, tuple[float, float]], feed_url: str,
) -> Config:
    """The demo's config: every simulated site that names no storm_watch source of its own
    follows the simulator's NWS-compatible feed at ``feed_url`` every ``DEMO_POLL_S``.

    ``positions`` are the simulated homes' (latitude, longitude); a site without a position of
    its own takes its home's (the home of its first simulated device).
    """
    sites = []
    for site in config.sites:
        homes = [d.simulated.split("/")[0] for d in site.devices if d.simulated]
        home = next((h for h in homes if h in positions), None)
        if site.storm_watch.sources or home is None:
            sites.append(site)  # its own sources, or not in the simulator: kept as written
            continue
        lat, lon = positions[home]
        update = {
            "latitude": lat if site.latitude is None else site.latitude,
            "longitude": lon if site.longitude is None else site.longitude,
            "storm_watch": StormWatch(nws=NwsSource(
                base_url=feed_url, poll_interval_s=DEMO_POLL_S, timeout_s=2.0,
                user_agent="energy-gateway demo")),
        }
        sites.append(site.model_copy(update=update))
    return config.model_copy(update={"sites": sites})
