"""The Home Assistant bridge: each site as an MQTT-discovered device, its controls through Site.command."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import time
from collections.abc import Mapping

import aiomqtt
import orjson
import structlog

from drivers.base import Quality
from drivers.errors import DeviceUnreachable
from drivers.transport.mqtt import MqttBroker
from gateway.core.config import MqttNorthbound
from gateway.core.errors import GatewayError, InvalidInput, SiteOffline, clip, refused
from gateway.core.homeassistant import (
    CONTROLS,
    OFFLINE,
    ONLINE,
    EnergyTotals,
    SiteShape,
    Topics,
    discovery_payload,
    parse_command,
    parse_registry,
    registry_payload,
    state_payload,
)
from gateway.runtime.history import HistoryService
from gateway.runtime.site import Site

log = structlog.get_logger("gateway.runtime.homeassistant")

try:
    VERSION = importlib.metadata.version("energy-gateway")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
    VERSION = "0.0.0"

MAX_COMMANDS_IN_FLIGHT = 16  # Home Assistant commands waiting for a site's pipeline at once
_STOP_PUBLISH_S = 1.0  # how long a clean stop waits to say "offline" itself


class HomeAssistantBridge:
    """Publishes every site to a broker for Home Assistant and runs its commands (docs/home-assistant.md).

    One owner of one broker connection (``drivers.transport.mqtt.MqttBroker``: reconnects with
    capped backoff, re-subscribes; the last will marks the gateway offline). One task publishes:
    after every (re)connect and every Home Assistant birth message all of it (gateway status,
    the registry of sites, each site's discovery, availability and state), in between what
    changed, every ``state_interval_s`` or at once after a command. Commands run as tasks through
    ``Site.command`` (the Fleet API's verified pipeline); controls show the settings the devices
    confirmed (``Site.confirmed``). Nothing here blocks the API or the pollers: a broker that is
    down only delays what Home Assistant sees.
    """

    def __init__(self, config: MqttNorthbound, sites: Mapping[int, Site],
                 history: HistoryService | None = None) -> None:
        self.config = config
        self.topics = Topics(config.discovery_prefix, config.base_topic)
        self.sites = sites
        self.history = history
        self.broker = MqttBroker(
            config.host, config.port, timeout_s=config.timeout_s,
            backoff_max_s=config.backoff_max_s, client_prefix="energy-gateway-ha",
            login=config.login(),
            will=aiomqtt.Will(self.topics.status, OFFLINE.encode(), qos=1, retain=True),
        )
        self._wake = asyncio.Event()
        self._everything = True  # publish all of it on the next pass (connect, HA birth)
        self._forced: set[int] = set()  # sites whose state goes out on the next pass
        self._sent: dict[str, bytes] = {}  # topic -> payload last published (retained ones)
        self._energy: dict[int, EnergyTotals] = {}
        self._energy_at: float | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self._removals: set[asyncio.Task[None]] = set()
        self._log = log.bind(broker=f"{config.host}:{config.port}")

    # ---- life cycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, subscribe, and publish until cancelled (the Gateway owns this task)."""
        topics = self.topics
        self.broker.on_connect(self._connected)
        await self.broker.subscribe(topics.ha_status, self._on_ha_status)
        await self.broker.subscribe(topics.commands, self._on_command)
        await self.broker.subscribe(topics.registry, self._on_registry)
        self.broker.start()
        interval = self.config.state_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            if not self.broker.connected:
                continue  # the connect callback wakes this loop
            try:
                await self._publish_pass()
            except DeviceUnreachable as exc:
                # The connection dropped mid-pass: the reconnect publishes everything again.
                self._everything = True
                self._log.info("ha.publish_interrupted", error=str(exc))

    async def stop(self) -> None:
        """Say "offline" while still connected (a clean stop sends no last will), then disconnect."""
        for task in (*self._commands, *self._removals):
            task.cancel()
        for task in (*self._commands, *self._removals):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.broker.connected:
            with contextlib.suppress(DeviceUnreachable):
                await self.broker.publish(self.topics.status, OFFLINE.encode(), retain=True,
                                          timeout_s=_STOP_PUBLISH_S)
        await self.broker.aclose()

    # ---- publishing --------------------------------------------------------------------------

    def _connected(self) -> None:
        self._everything = True
        self._sent.clear()
        self._wake.set()
        self._log.info("ha.connected", sites=sorted(self.sites))

    async def _publish_pass(self) -> None:
        everything = self._everything
        self._everything = False
        forced, self._forced = self._forced, set()
        topics = self.topics
        if everything:
            await self._send(topics.status, ONLINE.encode(), force=True)
            await self._send(topics.registry, registry_payload(list(self.sites)), force=True)
        await self._refresh_energy(force=everything)
        now = time.monotonic()
        for site in self.sites.values():
            again = everything or site.id in forced
            caps = site.capabilities()
            if caps:  # what the entities are follows from the devices: wait for the first identify
                shape = SiteShape(site.id, site.config.name, tuple(d.name for d in site.devices),
                                  caps)
                await self._send(topics.discovery(site.id),
                                 orjson.dumps(discovery_payload(shape, topics, version=VERSION)),
                                 force=everything)
            await self._send(topics.availability(site.id),
                             (OFFLINE if site.offline(now) else ONLINE).encode(), force=again)
            await self._send(topics.state(site.id), orjson.dumps(self.state(site, now)), force=again)

    async def _send(self, topic: str, payload: bytes, *, force: bool) -> None:
        """Publish retained when forced or changed since the last time."""
        if not force and self._sent.get(topic) == payload:
            return
        await self.broker.publish(topic, payload, retain=True)
        self._sent[topic] = payload

    def state(self, site: Site, now_mono: float | None = None) -> dict[str, object]:
        """The state object of ``site`` as it would be published now."""
        now = time.monotonic() if now_mono is None else now_mono
        try:
            reading = site.reading()
        except SiteOffline:
            reading = None
        return state_payload(
            reading,
            storm_mode_active=None if reading is None else site.storm_mode_active(reading),
            settings=site.confirmed,
            devices_online=[d.quality(now) is not Quality.OFFLINE for d in site.devices],
            energy=self._energy.get(site.id),
        )

    async def _refresh_energy(self, *, force: bool) -> None:
        history = self.history
        now = time.monotonic()
        if history is None or (not force and self._energy_at is not None
                               and now - self._energy_at < self.config.energy_interval_s):
            return
        self._energy_at = now
        for site in self.sites.values():
            try:
                flows = await history.lifetime(site)
            except Exception as exc:  # a storage problem must not stop the bridge
                self._log.warning("ha.energy_unavailable", site_id=site.id, error=str(exc))
                continue
            totals = EnergyTotals.from_flows(flows)
            self._energy[site.id] = totals.at_least(self._energy.get(site.id))

    # ---- incoming ----------------------------------------------------------------------------

    def _on_ha_status(self, topic: str, payload: bytes, retained: bool) -> None:
        del topic, retained
        if payload.strip() == ONLINE.encode():
            # Home Assistant (re)started: it needs the state again (discovery is retained).
            self._everything = True
            self._wake.set()
            self._log.info("ha.birth")

    def _on_registry(self, topic: str, payload: bytes, retained: bool) -> None:
        del topic, retained
        gone = sorted(set(parse_registry(payload)) - set(self.sites))
        if gone:
            task = asyncio.create_task(self._remove(gone), name="ha-remove")
            self._removals.add(task)
            task.add_done_callback(self._removals.discard)

    async def _remove(self, site_ids: list[int]) -> None:
        """Empty retained discovery, state and availability of sites that left the config."""
        topics = self.topics
        try:
            for site_id in site_ids:
                for topic in (topics.discovery(site_id), topics.state(site_id),
                              topics.availability(site_id)):
                    await self.broker.publish(topic, b"", retain=True)
                self._log.info("ha.site_removed", site_id=site_id)
            await self.broker.publish(topics.registry, registry_payload(list(self.sites)),
                                      retain=True)
        except DeviceUnreachable as exc:
            # The registry still lists them: the next connect finds and removes them again.
            self._log.info("ha.remove_interrupted", error=str(exc))

    def _on_command(self, topic: str, payload: bytes, retained: bool) -> None:
        parsed = self.topics.parse_command(topic)
        if parsed is None:
            return
        site_text, control = parsed
        # at most 16 digits: site ids are < 2**53, and int() of a huge digit string raises
        site = self.sites.get(int(site_text)) if site_text.isdigit() and len(site_text) <= 16 \
            else None
        if retained:
            # A retained command would run again on every reconnect: never act on one.
            self._log.warning("ha.command_refused", topic=clip(topic, 120),
                              reason="retained command (publish commands without retain)")
            return
        if site is None:
            self._log.warning("ha.command_refused", topic=clip(topic, 120), reason="unknown site")
            return
        try:
            changes = parse_command(control, payload)
        except InvalidInput as exc:
            self._log.warning("ha.command_refused", site_id=site.id, control=clip(control),
                              reason=exc.description)
            self._republish(site.id)  # Home Assistant's control shows the unchanged value again
            return
        if len(self._commands) >= MAX_COMMANDS_IN_FLIGHT:
            self._log.warning("ha.command_refused", site_id=site.id, control=control,
                              reason=f"{MAX_COMMANDS_IN_FLIGHT} commands already waiting")
            self._republish(site.id)
            return
        task = asyncio.create_task(self._command(site, control, changes), name=f"ha-{control}")
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _command(self, site: Site, control: str, changes: dict[str, object]) -> None:
        try:
            await site.command(CONTROLS[control], changes)
        except GatewayError as exc:
            # Site.command logged the outcome and journalled it; this names the source.
            self._log.warning("ha.command_failed", site_id=site.id, control=control,
                              outcome="rejected" if refused(exc) else "kept",
                              error=type(exc).__name__, detail=exc.description)
        except Exception:
            self._log.exception("ha.command_crashed", site_id=site.id, control=control)
        else:
            self._log.info("ha.command_applied", site_id=site.id, control=control)
        finally:
            self._republish(site.id)

    def _republish(self, site_id: int) -> None:
        self._forced.add(site_id)
        self._wake.set()
