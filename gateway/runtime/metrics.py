"""Prometheus metrics of one Gateway: its own registry, fed by the runtime's Observer hooks."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from drivers.base import Quality
from gateway.core.errors import SiteOffline
from gateway.runtime.site import Site

# Read once at import: a metadata lookup opens files, which has no place on the event loop.
try:
    VERSION = metadata.version("energy-gateway")
except metadata.PackageNotFoundError:  # running from a tree that was never installed
    VERSION = "unknown"

# Polls and commands on a LAN take milliseconds; a command waits for a read-back (up to the
# command timeout, 5 s by default).
_POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMMAND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FLOWS = ("solar", "battery", "grid", "load")


class GatewayMetrics:
    """The Observer that counts into a registry of its own (never the module-global default:
    two gateways in one process, as in tests and bench, keep separate series).

    Labels carry site ids, device names, command names, outcomes and exception class names:
    nothing from a request, a token or a device's options, so neither secrets nor unbounded
    label values reach ``/metrics``. Gauges (device online, site powers, SoC) are read from the
    sites at scrape time rather than kept up to date on every poll.
    """

    def __init__(self, sites: Mapping[int, Site]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.poll_seconds = Histogram(
            "energy_gateway_poll_duration_seconds", "Time of one device poll (connect if needed, read)",
            ["site_id", "device"], buckets=_POLL_BUCKETS, registry=reg)
        self.poll_errors = Counter(
            "energy_gateway_poll_errors", "Failed device polls, by the error's kind",
            ["site_id", "device", "kind"], registry=reg)
        self.command_seconds = Histogram(
            "energy_gateway_command_duration_seconds",
            "Time from a command's arrival at its site to its outcome (journal status)",
            ["command", "outcome"], buckets=_COMMAND_BUCKETS, registry=reg)
        self.reapplications = Counter(
            "energy_gateway_drift_reapplications",
            "Setpoints re-applied because a device no longer held them", ["site_id"], registry=reg)
        self.rate_limited_requests = Counter(
            "energy_gateway_rate_limited_requests", "API requests refused by a rate-limit plan",
            ["plan"], registry=reg)
        build = Info("energy_gateway_build", "Version of the gateway and of Python", registry=reg)
        build.info({"version": VERSION, "python": platform.python_version()})
        reg.register(_SiteCollector(sites.values))

    # ---- Observer ---------------------------------------------------------------------------

    def poll_done(self, site_id: int, device: str, seconds: float, error: str | None) -> None:
        site = str(site_id)
        self.poll_seconds.labels(site, device).observe(seconds)
        if error is not None:
            self.poll_errors.labels(site, device, error).inc()

    def command_done(self, site_id: int, command: str, outcome: str, seconds: float) -> None:
        self.command_seconds.labels(command, outcome).observe(seconds)

    def reapplied(self, site_id: int) -> None:
        self.reapplications.labels(str(site_id)).inc()

    def rate_limited(self, plan: str) -> None:
        self.rate_limited_requests.labels(plan).inc()


class _SiteCollector(Collector):
    """Device and site gauges, read from the live sites at each scrape."""

    def __init__(self, sites: Callable[[], Iterable[Site]]) -> None:
        self._sites = sites

    def describe(self) -> Iterable[Metric]:
        return []  # the families depend on the sites: not checked against other collectors

    def collect(self) -> Iterable[Metric]:
        now = time.monotonic()
        online = GaugeMetricFamily(
            "energy_gateway_device_online",
            "1 when the device's data is within its stale limit, else 0",
            labels=["site_id", "device", "type"])
        age = GaugeMetricFamily(
            "energy_gateway_device_data_age_seconds", "Seconds since the device's last good read",
            labels=["site_id", "device"])
        power = GaugeMetricFamily(
            "energy_gateway_site_power_watts",
            "Site power by flow: solar >= 0, battery + discharging, grid + importing, load",
            labels=["site_id", "flow"])
        soc = GaugeMetricFamily(
            "energy_gateway_site_soc_percent", "Site battery state of charge", labels=["site_id"])
        up = GaugeMetricFamily(
            "energy_gateway_site_online", "1 when every device of the site is online",
            labels=["site_id"])
        for site in self._sites():
            sid = str(site.id)
            for d in site.devices:
                online.add_metric([sid, d.name, d.config.type],
                                  0.0 if d.quality(now) is Quality.OFFLINE else 1.0)
                seen = d.age_s(now)
                if seen is not None:
                    age.add_metric([sid, d.name], seen)
            try:
                if not any(d.telemetry is not None for d in site.devices):
                    raise SiteOffline(f"site {sid}: no data yet")  # noqa: TRY301
                reading = site.reading()
            except SiteOffline:
                up.add_metric([sid], 0.0)
                continue  # no site sums from part of its devices: they would mislead
            up.add_metric([sid], 1.0)
            for flow, value in zip(_FLOWS, (reading.solar_w, reading.battery_w, reading.grid_w,
                                            reading.load_w), strict=True):
                power.add_metric([sid, flow], value)
            if reading.soc_pct is not None:
                soc.add_metric([sid], reading.soc_pct)
        return [online, age, up, power, soc]
