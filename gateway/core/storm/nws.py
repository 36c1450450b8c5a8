"""The US National Weather Service alerts feed: a GeoJSON answer parsed into the alerts that count."""

from __future__ import annotations

import email.utils
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson

from gateway.core.storm.alerts import (
    MAX_ALERTS_PER_SOURCE,
    FeedError,
    StormAlert,
    aware,
    clip,
)

#: The largest answer read (the real feed for a point is a few kB to a few hundred kB).
MAX_BODY_BYTES: Final = 2_000_000
#: The most features looked at in one answer; the rest are ignored (and counted as skipped).
MAX_FEATURES: Final = 500
SOURCE: Final = "nws"


@dataclass(frozen=True, slots=True)
class NwsParse:
    """What one answer said: the alerts that count now, and how many features it held / skipped.

    ``skipped`` counts features that could not be read (not an object, a bad time) and those
    beyond ``MAX_FEATURES``; alerts that do not count (other events, tests, cancels, ended) are
    not skipped, just not alerts.
    """

    alerts: tuple[StormAlert, ...]
    features: int
    skipped: int


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (delta-seconds or an HTTP date, RFC 9110);
    None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(min(int(text), 86_400))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), 86_400.0)


def nws_point(latitude: float, longitude: float) -> str:
    """The ``point`` parameter: at most 4 decimals (the API redirects longer ones)."""
    return f"{_coord(latitude)},{_coord(longitude)}"


def _coord(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def parse_nws(body: bytes, *, now: datetime, events: Collection[str]) -> NwsParse:
    """Parse ``GET /alerts/active?point=...``: a GeoJSON FeatureCollection.

    An alert counts when ``status`` is ``Actual``, ``messageType`` is not ``Cancel``, its
    ``event`` is one of ``events`` and ``now`` is before its ``ends`` (or ``expires`` when
    ``ends`` is null). Times must carry a UTC offset.

    Raises:
        FeedError: the body is too large, not JSON, or not a FeatureCollection.
    """
    if len(body) > MAX_BODY_BYTES:
        raise FeedError(f"answer of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"answer is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise FeedError("answer is not a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise FeedError("answer has no features list")
    wanted = frozenset(events)
    alerts: list[StormAlert] = []
    skipped = max(len(features) - MAX_FEATURES, 0)
    for feature in features[:MAX_FEATURES]:
        try:
            alert = _alert(feature, now, wanted)
        except FeedError:
            skipped += 1
            continue
        if alert is not None and len(alerts) < MAX_ALERTS_PER_SOURCE:
            alerts.append(alert)
    return NwsParse(tuple(alerts), len(features), skipped)


def _alert(feature: object, now: datetime, events: frozenset[str]) -> StormAlert | None:
    if not isinstance(feature, dict) or not isinstance(props := feature.get("properties"), dict):
        raise FeedError("feature without properties")
    if props.get("status") != "Actual" or props.get("messageType") == "Cancel":
        return None
    event = props.get("event")
    if not isinstance(event, str) or event not in events:
        return None
    ends = aware(props.get("ends"), "ends") or aware(props.get("expires"), "expires")
    if ends is None:
        raise FeedError("alert with neither ends nor expires")
    alert = StormAlert(
        event=clip(event), source=SOURCE, onset=aware(props.get("onset"), "onset"), ends=ends,
        id=clip(props.get("id") or feature.get("id")), headline=clip(props.get("headline")),
        severity=clip(props.get("severity")),
    )
    return alert if alert.active(now) else None
