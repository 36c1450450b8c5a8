"""A storm alert as every source reports it, the counting rule in time, and the site's active set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

#: Tesla's published Storm Watch triggers (the NWS event names), the default ``events`` set.
DEFAULT_EVENTS: Final[tuple[str, ...]] = (
    "Hurricane Warning",
    "Hurricane Watch",
    "Tropical Storm Warning",
    "Tropical Storm Watch",
    "Red Flag Warning",
    "Severe Thunderstorm Warning",
    "Tornado Warning",
    "Winter Storm Warning",
    "Blizzard Warning",
    "High Wind Warning",
    "Ice Storm Warning",
    "Snow Squall Warning",
    "Wind Advisory",
)
#: The most alerts one source holds at once (a feed listing more is cut, not trusted blindly).
MAX_ALERTS_PER_SOURCE: Final = 32
_MAX_TEXT: Final = 200  # event names, headlines and ids are cut to this many characters


class FeedError(ValueError):
    """An alert feed's answer or message that cannot be used (the text says why)."""


def clip(text: object) -> str:
    """A feed's string value, bounded (non-strings become "")."""
    return text[:_MAX_TEXT] if isinstance(text, str) else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StormAlert:
    """One alert from one source.

    Attributes:
        event: what it is, e.g. ``Tornado Warning``.
        source: where it came from: ``nws``, ``mqtt``, ``admin`` or ``device:<name>``.
        onset: when the hazard begins (aware), None when the source does not say.
        ends: when the alert stops counting (aware; the NWS ``ends``, else ``expires``), None
            while the source holds it without an end (an MQTT ``true``, a device bit).
        id: the source's id for it ("" when it has none).
        headline: a one-line description ("" when none).
        severity: the NWS severity (``Extreme``, ``Severe``...), "" when none.
    """

    event: str
    source: str
    onset: datetime | None = None
    ends: datetime | None = None
    id: str = ""
    headline: str = ""
    severity: str = ""

    def active(self, now: datetime) -> bool:
        """Whether it counts at ``now``: until its ``ends``. A watch counts before its onset:
        charging ahead of the storm is the point."""
        return self.ends is None or now < self.ends

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 or None)."""
        return {
            "event": self.event, "source": self.source,
            "onset": None if self.onset is None else self.onset.isoformat(),
            "ends": None if self.ends is None else self.ends.isoformat(),
            "id": self.id, "headline": self.headline, "severity": self.severity,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StormAlert:
        """The inverse of ``to_json``; FeedError when a field is unusable."""
        try:
            return cls(event=clip(data["event"]) or "Storm alert", source=clip(data["source"]),
                       onset=aware(data.get("onset"), "onset"), ends=aware(data.get("ends"), "ends"),
                       id=clip(data.get("id")), headline=clip(data.get("headline")),
                       severity=clip(data.get("severity")))
        except (KeyError, TypeError) as exc:
            raise FeedError(f"stored alert lacks {exc}") from exc


def aware(value: object, name: str) -> datetime | None:
    """An ISO 8601 instant with a UTC offset, or None for null/absent; FeedError otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise FeedError(f"{name} is not an ISO 8601 time")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise FeedError(f"{name} {value[:40]!r} is not an ISO 8601 time") from None
    if when.utcoffset() is None:
        raise FeedError(f"{name} {value[:40]!r} has no UTC offset")
    return when


def alerts_to_json(alerts: Iterable[StormAlert]) -> list[dict[str, Any]]:
    """Alerts as JSON-ready dicts (the persisted form)."""
    return [a.to_json() for a in alerts]


def alerts_from_json(data: object) -> tuple[StormAlert, ...]:
    """Persisted alerts back; FeedError when the stored form is not a list of alerts."""
    if not isinstance(data, list):
        raise FeedError("stored alerts are not a list")
    return tuple(StormAlert.from_json(d) for d in data[:MAX_ALERTS_PER_SOURCE]
                 if isinstance(d, Mapping))


def active_alerts(
    sources: Mapping[str, Sequence[StormAlert]], now: datetime,
) -> tuple[StormAlert, ...]:
    """The site's active alerts from every source's latest ones: those that count at ``now``,
    the earliest onset first (an alert without onset counts from the start), then by source."""
    found = [a for alerts in sources.values() for a in alerts if a.active(now)]
    return tuple(sorted(found, key=_order))


def primary(alerts: Sequence[StormAlert]) -> StormAlert | None:
    """The alert that names the storm episode: the one that ends last (no end = last of all)."""
    if not alerts:
        return None
    return max(alerts, key=lambda a: (a.ends is None, a.ends.timestamp() if a.ends else 0.0))


@dataclass(frozen=True, slots=True)
class StormEpisode:
    """A span storm mode was active: from ``start`` to ``end`` (None while it lasts), for which
    alert (the one ending last when it began) from which source."""

    start: datetime
    end: datetime | None
    event: str
    source: str
    alert_onset: datetime | None
    alert_ends: datetime | None

    def covers(self, when: datetime) -> bool:
        """Whether storm mode was active at ``when``."""
        return self.start <= when and (self.end is None or when <= self.end)


def episode_at(episodes: Iterable[StormEpisode], when: datetime) -> StormEpisode | None:
    """The storm-mode episode active at ``when`` (the latest to start), if any: an outage that
    began then found the battery pre-charged for that alert."""
    found = [e for e in episodes if e.covers(when)]
    return max(found, key=lambda e: e.start) if found else None


def _order(alert: StormAlert) -> tuple[float, str, str]:
    start = alert.onset.timestamp() if alert.onset is not None else float("-inf")
    return (start, alert.source, alert.id)
