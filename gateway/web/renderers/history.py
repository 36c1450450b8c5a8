"""The Fleet bodies of the history endpoints: energy, backup and charge (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

from gateway.core.history import (
    MAX_EVENTS,
    Bucket,
    ChargeSession,
    EntryPlan,
    FlowEnergy,
    Outage,
    Window,
    outages_in,
    plan_energy,
    sum_by_entry,
    zone,
)
from gateway.core.storm import StormEpisode, episode_at
from gateway.web.renderers.models import (
    BackupEvent,
    BackupHistory,
    ChargeEntry,
    ChargeHistory,
    EnergyEntry,
    EnergyFields,
    EnergyHistory,
    rfc3339,
)


def energy_fields(energy: FlowEnergy) -> EnergyFields:
    """The Fleet ``time_series`` energy fields (Wh) for ``energy``, by the identities of docs/api.md.

    Values are rounded to 1 mWh; the derived totals are summed from the rounded parts so the
    identities hold to float precision. Generator and grid-services fields are 0.
    """
    # One dict literal, no loops: this runs once per entry of answers up to MAX_ENTRIES long.
    sh = round(energy.solar_to_home, 3) + 0.0  # + 0.0 turns -0.0 into 0.0
    sb = round(energy.solar_to_battery, 3) + 0.0
    sg = round(energy.solar_to_grid, 3) + 0.0
    bh = round(energy.battery_to_home, 3) + 0.0
    bg = round(energy.battery_to_grid, 3) + 0.0
    gh = round(energy.grid_to_home, 3) + 0.0
    gb = round(energy.grid_to_battery, 3) + 0.0
    solar = round(sg + sb + sh, 3)
    battery_out = round(bh + bg, 3)
    return {
        "solar_energy_exported": solar,
        "generator_energy_exported": 0.0,
        "grid_energy_imported": round(gb + gh, 3),
        "grid_services_energy_imported": 0.0,
        "grid_services_energy_exported": 0.0,
        "grid_energy_exported_from_solar": sg,
        "grid_energy_exported_from_generator": 0.0,
        "grid_energy_exported_from_battery": bg,
        "battery_energy_exported": battery_out,
        "battery_energy_imported_from_grid": gb,
        "battery_energy_imported_from_solar": sb,
        "battery_energy_imported_from_generator": 0.0,
        "consumer_energy_imported_from_grid": gh,
        "consumer_energy_imported_from_solar": sh,
        "consumer_energy_imported_from_battery": bh,
        "consumer_energy_imported_from_generator": 0.0,
        "total_home_usage": round(gh + sh + bh, 3),
        "total_battery_charge": round(gb + sb, 3),
        "total_battery_discharge": battery_out,
        "total_solar_generation": solar,
        "total_grid_energy_exported": round(sg + bg, 3),
    }


def energy_body(
    plan: EntryPlan, sums: Sequence[FlowEnergy], site_tz: str | ZoneInfo
) -> EnergyHistory:
    """The ``calendar_history?kind=energy`` body for ``plan`` with one energy sum per entry.

    Each entry's ``timestamp`` is its local start with offset; zero-energy entries are kept.
    """
    tz = plan.window.tz
    series: list[EnergyEntry] = [
        {"timestamp": rfc3339(start, tz), **energy_fields(energy)}
        for start, energy in zip(plan.starts, sums, strict=True)
    ]
    return EnergyHistory.model_construct(
        period=plan.period,
        installation_time_zone=site_tz.key if isinstance(site_tz, ZoneInfo) else site_tz,
        time_series=series,
    )


def energy_response(
    buckets: Iterable[Bucket], window: Window, period: str, site_tz: str | ZoneInfo
) -> EnergyHistory:
    """The ``calendar_history?kind=energy`` response body (inside ``response``).

    The whole answer from the buckets themselves (the service sums stored buckets in SQL
    instead, with the same ``plan_energy`` and ``energy_body``): entries as ``plan_energy``
    describes them, the oldest bucket taken as the site's first data.

    Args:
        buckets: 5-minute buckets (any order; equal starts are summed); only those starting in
            the window count.
        window: from ``resolve_window``.
        period: the requested period (echoed).
        site_tz: the site's IANA zone, reported as ``installation_time_zone``.

    Raises:
        HistoryQueryError: as ``plan_energy``.
    """
    buckets = list(buckets)
    plan = plan_energy(window, period, min((b.start for b in buckets), default=None))
    return energy_body(plan, sum_by_entry(buckets, plan.edges), site_tz)


def backup_response(
    events: Iterable[Outage],
    window: Window,
    tz: str | ZoneInfo | None = None,
    *,
    max_events: int = MAX_EVENTS,
    storm: Sequence[StormEpisode] = (),
) -> BackupHistory:
    """The ``calendar_history?kind=backup`` response body (inside ``response``).

    Reports the outages ``outages_in`` selects (those that start inside the window, oldest
    first); ``duration`` is whole seconds, an open outage counting up to ``window.now``.

    Args:
        events: outages, e.g. from ``HistoryStore.outages_started``.
        window: from ``resolve_window``.
        tz: zone for the timestamps; defaults to ``window.tz``.
        max_events: the most outages one answer may list.
        storm: storm-mode episodes of the window; an outage that began during one carries
            ``storm_watch`` (which alert, from which source, since when it charged).

    Raises:
        HistoryQueryError: as ``outages_in``.
    """
    zone_ = window.tz if tz is None else tz if isinstance(tz, ZoneInfo) else zone(tz)
    out: list[BackupEvent] = []
    for e in outages_in(events, window, max_events=max_events):
        event: BackupEvent = {"timestamp": rfc3339(e.start, zone_),
                              "duration": round(e.duration_s(window.now))}
        episode = episode_at(storm, e.start)
        if episode is not None:  # the battery was being held full for this alert
            event["storm_watch"] = {
                "event": episode.event, "source": episode.source,
                "since": rfc3339(episode.start, zone_),
                "alert_ends": None if episode.alert_ends is None
                else rfc3339(episode.alert_ends, zone_)}
        out.append(event)
    return BackupHistory.model_construct(events=out, total_events=len(out))


def charge_response(sessions: Sequence[ChargeSession]) -> ChargeHistory:
    """The ``telemetry_history?kind=charge`` response body (inside ``response``).

    The same entries appear under ``charge_history`` and ``time_series``, the two keys Fleet
    clients read (docs/api.md "History"); both are empty lists without a charging session.
    """
    entries: list[ChargeEntry] = [
        {
            "charge_start_time": {"seconds": int(s.start.timestamp())},
            "charge_duration": {"seconds": round(s.duration_s)},
            "energy_added_wh": round(s.energy_wh, 3),
        }
        for s in sorted(sessions, key=lambda s: s.start)
    ]
    return ChargeHistory.model_construct(charge_history=entries, time_series=list(entries))
