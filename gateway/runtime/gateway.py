"""The Gateway: a config's live system — storage, drivers, sites, pollers, control loops, history, proxies."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import zoneinfo
from collections.abc import Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import structlog

from drivers.base import Capability, DeviceInfo
from drivers.registry import DRIVERS
from drivers.transport import Transports
from drivers.transport.modbus import ModbusPool
from gateway.core.config import Config, DeviceConfig
from gateway.runtime.clock import Clock, Timebase, timebase_for, utc_now
from gateway.runtime.devices import DeviceState, DeviceView, identity_from_json, identity_json
from gateway.runtime.history import HistoryService
from gateway.runtime.homeassistant import HomeAssistantBridge
from gateway.runtime.metrics import GatewayMetrics
from gateway.runtime.ocpp.central import CentralSystem
from gateway.runtime.planner import PlannerService
from gateway.runtime.poller import DevicePoller
from gateway.runtime.proxy import ModbusProxy
from gateway.runtime.site import Site
from gateway.runtime.storage import Storage
from gateway.runtime.storage.charging import ChargeStore
from gateway.runtime.storage.history import HistoryStore
from gateway.runtime.storage.planner import PlannerStore
from gateway.runtime.storage.sites import SiteStore, keep_journal
from gateway.runtime.storage.storm import StormStore
from gateway.runtime.storage.tokens import TokenRegistry
from gateway.runtime.storage.uplink import UplinkStore
from gateway.runtime.storm import NwsPoller, StormWatch, run_mqtt_source
from gateway.runtime.uplink import Uplink, UplinkBridge

log = structlog.get_logger("gateway.runtime.gateway")


class Gateway:
    """Everything a config describes, running: usable without HTTP (bench and tests drive it).

    ``async with Gateway(config) as gw:`` opens storage, builds the drivers and sites, starts a
    poller per device, a control loop per site, the history recorder, the journal pruner and the
    Modbus proxies; leaving the block stops them in reverse. ``sites``, ``history``, ``tokens``
    and ``proxies`` are the same objects for the whole life of the Gateway (filled by
    ``start``). ``first_started_at`` is when a gateway first started on this storage (UTC; set
    by ``start``), e.g. an installation date where a site has none configured.

    ``timebase`` is the gateway's domain time (``runtime/clock.py``): given (the demo hands its
    simulator's clock), else what ``gateway.clock`` configures, else ``clock`` at speed 1.
    """

    def __init__(self, config: Config, *, clock: Clock = utc_now,
                 timebase: Timebase | None = None, uplink_bridge: UplinkBridge | None = None) -> None:
        self.config = config
        self.timebase = timebase or timebase_for(config.gateway.clock, clock)
        self.clock: Clock = self.timebase.now
        self.sites: dict[int, Site] = {}
        self.planners: dict[int, PlannerService] = {}
        self.proxies: dict[tuple[int, str], ModbusProxy] = {}
        self.storage = Storage.in_data_dir(config.gateway.data_dir)
        self.history = HistoryService(HistoryStore(self.storage), timebase=self.timebase)
        self.tokens = TokenRegistry(self.storage)
        self.first_started_at: datetime | None = None
        self.northbound: HomeAssistantBridge | None = None  # config.mqtt_northbound, when set
        self.metrics = GatewayMetrics(self.sites)  # this gateway's own Prometheus registry
        self.chargers: CentralSystem | None = None  # OCPP (gateway.ocpp configured)
        self._store = SiteStore(self.storage)
        self._transports = Transports(modbus=ModbusPool())
        self._states: list[DeviceState] = []
        self._tasks: list[asyncio.Task[None]] = []
        # uplink: (docs/hub.md); the bridge renders Fleet bodies, so only an app can give one
        self._uplink_bridge = uplink_bridge
        self.uplink: Uplink | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open storage, build drivers and sites, start every background task."""
        config = self.config
        store = self._store
        try:
            await self.timebase.start()  # before anything reads the time
            await self.storage.open()
            self._log_storage()
            self.first_started_at = await self.storage.note_start(self.clock())
            interrupted = await store.close_interrupted(self.clock())
            if interrupted:
                log.warning("journal.interrupted", entries=interrupted)
            # ZoneInfo reads the tz database on first use: off the event loop
            zones = await asyncio.to_thread(
                lambda: {s.time_zone: zoneinfo.ZoneInfo(s.time_zone) for s in config.sites})
            built: list[tuple[Site, list[DeviceState]]] = []
            for site_config in config.sites:
                learned = await store.load_identities(site_config.energy_site_id)
                states = [self._device(dev, learned.get(dev.name)) for dev in site_config.devices]
                self._states.extend(states)
                storm = StormWatch(site_config.energy_site_id, StormStore(self.storage),
                                   clock=self.clock, configured=site_config.storm_watch.sources)
                await storm.load()
                site = Site(site_config, states, store, tz=zones[site_config.time_zone],
                            command_timeout_s=config.gateway.command_timeout_s,
                            timebase=self.timebase, observer=self.metrics, storm=storm)
                await site.load()
                self.history.add_site(site)
                self.sites[site.id] = site
                built.append((site, states))
                for dev in site_config.devices:
                    if dev.proxy_port is not None:
                        proxy = self._proxy(dev)
                        self.proxies[(site.id, dev.name)] = proxy
                        await proxy.start()
            for site, states in built:
                for state in states:
                    self._spawn(self._poller(site, state).run(), f"poll-{site.id}-{state.name}")
                self._spawn(site.control_loop(config.gateway.reconcile_interval_s),
                            f"control-{site.id}")
                planner = self.planners[site.id] = PlannerService(
                    site, timebase=self.timebase, store=PlannerStore(self.storage),
                    mqtt=self._transports.mqtt)
                self._spawn(planner.run(), f"planner-{site.id}")
                self._start_storm_watch(site)
            self._spawn(self.history.run(), "history")
            if config.gateway.ocpp is not None:
                self.history.charges = ChargeStore(self.storage)
                self.chargers = CentralSystem(config.gateway.ocpp, self.sites,
                                              self.history.charges, clock=self.clock)
                await self.chargers.start()
                for site in self.sites.values():
                    site.chargers = self.chargers.of_site(site.id)
                self._spawn(self.chargers.control_loop(), "ocpp-control")
            self._spawn(keep_journal(store, config.gateway.journal_retention_days, self.clock),
                        "journal")
            self._start_uplink()
            if config.mqtt_northbound is not None:
                # sandbox sites are simulated homes for app developers, not the house's devices
                real = {i: s for i, s in self.sites.items() if not s.config.sandbox}
                self.northbound = HomeAssistantBridge(config.mqtt_northbound, real, self.history)
                self._spawn(self.northbound.run(), "ha-mqtt")
        except BaseException:
            await self.stop()
            raise
        log.info("gateway.started", sites=sorted(self.sites), devices=len(self._states))

    async def stop(self) -> None:
        """Stop every task, proxy and connection, flush history and close storage."""
        if self.northbound is not None:  # first: it says "offline" while the broker is there
            with contextlib.suppress(Exception):
                await self.northbound.stop()
        if self.uplink is not None:
            await self.uplink.stop()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a task that died must not keep the rest from closing
                log.exception("gateway.task_failed", task=task.get_name())
        if self.chargers is not None:
            await self.chargers.stop()
        for proxy in self.proxies.values():
            await proxy.stop()
        self.proxies.clear()
        for state in self._states:
            with contextlib.suppress(Exception):
                await state.driver.close()
        self._states.clear()
        await self._transports.close()
        await self.history.close()
        await self.storage.close()
        await self.timebase.stop()
        if self.sites:
            self.sites.clear()
            log.info("gateway.stopped")

    def _start_uplink(self) -> None:
        section = self.config.uplink
        if section is None:
            return
        if self._uplink_bridge is None:
            log.warning("uplink.not_started", reason="this Gateway runs without the HTTP edge")
            return
        # sandbox sites are simulated homes for app developers, not homes the hub should list
        real = {i: s for i, s in self.sites.items() if not s.config.sandbox}
        self.uplink = Uplink(section, real, store=UplinkStore(self.storage),
                             history=HistoryStore(self.storage), bridge=self._uplink_bridge,
                             timebase=self.timebase, charges=ChargeStore(self.storage))
        self._spawn(self.uplink.run(), "uplink")

    def _log_storage(self) -> None:
        storage = self.storage
        if storage.migrated:
            log.info("storage.migrated", path=str(storage.path), versions=storage.migrated)
        if storage.taken_in is not None:
            log.info("storage.history_file_migrated", buckets=storage.taken_in.buckets,
                        hours=storage.taken_in.hours, outages=storage.taken_in.outages,
                        renamed_to=str(storage.taken_in.renamed_to))

    def _device(self, dev: DeviceConfig, learned: dict[str, Any] | None) -> DeviceState:
        """A device's state with its driver, and what an earlier run learned about it."""
        # dev.options is the driver's options model, validated when the config was loaded
        state = DeviceState(dev, DRIVERS[dev.type](dev.name, dev.options, self._transports))
        known = None if learned is None else identity_from_json(dev.type, learned)
        if known is not None:
            state.known_info, state.known_caps = known
        return state

    def _poller(self, site: Site, state: DeviceState) -> DevicePoller:
        history = self.history

        def on_telemetry(device: DeviceView) -> None:
            site.on_telemetry(device)
            history.on_telemetry(site, device)

        async def on_identity(
            device: DeviceView, info: DeviceInfo, caps: frozenset[Capability],
        ) -> bool:
            try:
                await self._store.save_identity(
                    site.id, device.name, identity_json(device.config.type, info, caps),
                    self.clock())
            except sqlite3.Error as exc:  # a disk problem must not stop the poller
                log.warning("device.identity_not_saved", site_id=site.id, device=device.name,
                            error=str(exc))
                return False
            return True

        return DevicePoller(state, on_connect=site.on_connect, on_telemetry=on_telemetry,
                            on_identity=on_identity, site_id=site.id,
                            stamp=self.clock if self.timebase.follows else None,
                            observer=self.metrics)

    def _proxy(self, dev: DeviceConfig) -> ModbusProxy:
        """A proxy sharing the device's own endpoint (its one TCP connection)."""
        options = dev.options
        endpoint = self._transports.modbus.acquire(
            options.host, options.port)  # type: ignore[attr-defined]
        return ModbusProxy(endpoint, unit_id=options.unit_id,  # type: ignore[attr-defined]
                           host=self.config.gateway.proxy_host, port=dev.proxy_port or 0,
                           allow_writes=dev.proxy_writes, name=dev.name)

    def _start_storm_watch(self, site: Site) -> None:
        """The site's storm watch and its configured alert sources (docs/api.md, "Storm watch")."""
        sources = site.config.storm_watch
        self._spawn(site.storm.run(lambda: site.settings.storm_mode_enabled), f"storm-{site.id}")
        lat, lon = site.config.latitude, site.config.longitude
        if sources.nws is not None and lat is not None and lon is not None:
            poller = NwsPoller(site.storm, sources.nws, lat, lon, clock=self.clock)
            self._spawn(poller.run(), f"storm-nws-{site.id}")
        if sources.mqtt is not None:
            self._spawn(run_mqtt_source(site.storm, sources.mqtt, self._transports.mqtt,
                                        clock=self.clock), f"storm-mqtt-{site.id}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))
