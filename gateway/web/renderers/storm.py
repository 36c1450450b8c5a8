"""Storm watch bodies: the storm_alert status answer and each site's storm_watch entry in /health."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from gateway.core.storm import StormAlert, StormEpisode
from gateway.runtime.site import Site
from gateway.runtime.storm import SourceState
from gateway.web.renderers.models import (
    StormAlertBody,
    StormEpisodeBody,
    StormSourceHealth,
    StormStatus,
    StormWatchHealth,
    rfc3339,
)


def _when(at: datetime | None, tz: tzinfo) -> str | None:
    return None if at is None else rfc3339(at, tz, timespec="seconds")


def alert_body(alert: StormAlert, tz: tzinfo) -> StormAlertBody:
    """One alert, its times in the site's zone."""
    return StormAlertBody.model_construct(
        event=alert.event, source=alert.source, onset=_when(alert.onset, tz),
        ends=_when(alert.ends, tz), id=alert.id, headline=alert.headline, severity=alert.severity)


def source_body(state: SourceState, tz: tzinfo) -> StormSourceHealth:
    """One source's health."""
    return StormSourceHealth.model_construct(
        status=state.status, failures=state.failures, last_error=state.last_error,
        last_ok_at=_when(state.last_ok_at, tz), alerts=len(state.alerts))


def storm_health(site: Site) -> StormWatchHealth:
    """The site's ``storm_watch`` entry in /health."""
    return StormWatchHealth.model_construct(
        active=site.storm.active(site.storm.now()),
        sources={name: source_body(s, site.tz) for name, s in sorted(site.storm.sources.items())})


def episode_body(episode: StormEpisode, tz: tzinfo) -> StormEpisodeBody:
    """One storm-mode episode, its times in the site's zone."""
    return StormEpisodeBody.model_construct(
        event=episode.event, source=episode.source,
        started=rfc3339(episode.start, tz, timespec="seconds"),
        ended=_when(episode.end, tz), alert_onset=_when(episode.alert_onset, tz),
        alert_ends=_when(episode.alert_ends, tz))


def storm_status(
    site: Site, now: datetime, episodes: Sequence[StormEpisode] = (),
) -> StormStatus:
    """``GET .../storm_alert``: the active alerts, since when storm mode acts, every source, and
    ``episodes`` (the last ones, newest first)."""
    alerts = site.storm.alerts(now)
    episode = site.storm.episode
    enabled = site.settings.storm_mode_enabled
    return StormStatus.model_construct(
        storm_mode_enabled=enabled,
        storm_mode_active=enabled and bool(alerts),
        alerts=[alert_body(a, site.tz) for a in alerts],
        active_since=None if episode is None else _when(episode.start, site.tz),
        sources={name: source_body(s, site.tz) for name, s in sorted(site.storm.sources.items())},
        episodes=[episode_body(e, site.tz) for e in episodes],
    )
