"""The Victron GX MQTT driver: portal discovery, keepalive probes, W/ writes confirmed on N/ echoes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

import structlog

from drivers.background import spawn, stop
from drivers.base import Capability, DeviceInfo, DeviceTelemetry, Setpoints
from drivers.errors import DeviceUnreachable
from drivers.transport import MqttBroker, Subscription, Transports
from drivers.transport.mqtt import EchoedWrite, LatestValues, write_confirmed
from drivers.victron_gx.codec import (
    FIRMWARE_VERSION,
    FULL_PUBLISH_COMPLETED,
    KEEPALIVE_FULL,
    KEEPALIVE_SUPPRESS,
    PROBE_PATH,
    SERIAL_DISCOVERY_FILTER,
    Gone,
    JsonValue,
    capabilities_from,
    decode_value,
    encode_write,
    keepalive_topic,
    liveness_fault,
    n_filter,
    outstanding_probe,
    parse_n_topic,
    portal_of_serial_topic,
    r_topic,
    same_value,
    setpoint_writes,
    setpoints_from,
    telemetry_from,
    vebus_instance_of,
    w_topic,
)
from drivers.victron_gx.options import VictronGxOptions

if TYPE_CHECKING:
    from drivers.registry import DriverClass

__all__ = ["VictronGxDriver", "VictronGxOptions"]


def _echo_shows(path: str, written: JsonValue, echoed: JsonValue | Gone) -> bool:
    del path
    return same_value(written, echoed)


class VictronGxDriver:
    """A Victron GX (Venus OS) behind its MQTT broker, shared with every other device on it."""

    options_model: ClassVar[type[VictronGxOptions]] = VictronGxOptions

    def __init__(self, name: str, options: VictronGxOptions, transports: Transports) -> None:
        self.name = name
        self.options = options
        # Learned from what the GX publishes on connect: none before (a discovering driver).
        self.capabilities: frozenset[Capability] = frozenset()
        self.portal_id: str | None = options.portal_id
        # The VE.Bus unit's device instance: configured, else learned from the GX on connect.
        self.vebus_instance: int | None = options.vebus_instance
        self.values: LatestValues[str, JsonValue | Gone] = LatestValues()
        self._transports = transports
        self._broker: MqttBroker | None = None
        self._sub: Subscription | None = None
        self._full_published = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._remove_listener: Callable[[], None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._probe_since: float | None = None  # monotonic: the oldest probe not yet answered
        self._log = structlog.get_logger("drivers.victron_gx").bind(
            device=name, broker=f"{options.host}:{options.port}"
        )

    # ----------------------------------------------------------------------- lifecycle

    async def connect(self) -> DeviceInfo:
        """Join the broker, find the portal, subscribe ``N/<portal>/#`` and get a full publish.

        Safe to call again (after failures): it only asks for a fresh full publish then.

        Raises:
            DeviceUnreachable: no broker, no GX found, or no full publish within connect_timeout_s.
        """
        broker = self._joined()
        timeout = self.options.connect_timeout_s
        await broker.wait_connected(timeout)
        if self.portal_id is None:
            self.portal_id = await self._discover(broker, timeout)
        portal = self.portal_id
        if self._sub is None:
            self._sub = await broker.subscribe(n_filter(portal), self._on_message, qos=0)
        if self._remove_listener is None:
            self._remove_listener = broker.on_connect(self._reconnected.set)
        await self._full_publish(broker, portal, timeout)
        if self._keepalive_task is None or self._keepalive_task.done():
            self._keepalive_task = spawn(
                self._keepalive_loop(broker, portal), name=f"victron keepalive {portal}"
            )
        firmware = self.values.value(FIRMWARE_VERSION)
        published = self.values.snapshot()
        if self.options.vebus_instance is None:
            self.vebus_instance = vebus_instance_of(published)
        storm_path = self._storm_path
        self.capabilities = capabilities_from(
            published, vebus_instance=self.vebus_instance, storm_path=storm_path
        )
        if storm_path is not None and Capability.STORM_WATCH not in self.capabilities:
            self._log.warning("victron.storm_path_not_published", path=storm_path)
        self._log.info("victron.connected", portal=portal, capabilities=sorted(self.capabilities))
        return DeviceInfo(
            manufacturer="Victron Energy",
            model="GX (Venus OS)",
            serial_number=portal,
            firmware_version=firmware if isinstance(firmware, str) else "",
            battery_capacity_wh=self.options.capacity_wh,
        )

    async def close(self) -> None:
        """Stop the keepalives, drop the subscription and give back the broker share."""
        task, self._keepalive_task = self._keepalive_task, None
        await stop(task)
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        broker, self._broker = self._broker, None
        sub, self._sub = self._sub, None
        self._probe_since = None
        if broker is not None:
            await self._transports.mqtt.release(broker, [] if sub is None else [sub])

    # ----------------------------------------------------------------------- reading

    async def read(self) -> DeviceTelemetry:
        """The latest values the GX published, normalised.

        Raises:
            DeviceUnreachable: not connected, or the GX left a keepalive probe unanswered.
        """
        self._fresh()
        return telemetry_from(
            self.values.snapshot(),
            now=datetime.now(UTC),
            vebus_instance=self.vebus_instance,
            capacity_wh=self.options.capacity_wh,
            storm_path=self._storm_path,
        )

    async def read_back(self) -> Setpoints:
        """The setpoints the GX holds, from its latest N/ values.

        Raises:
            DeviceUnreachable: not connected, or the GX left a keepalive probe unanswered.
        """
        self._fresh()
        return setpoints_from(self.values.snapshot(), vebus_instance=self.vebus_instance)

    # ----------------------------------------------------------------------- writing

    async def apply(self, setpoints: Setpoints) -> None:
        """Write on W/ only what differs, then wait for every echoed N/ value.

        Raises:
            NotConfirmed: an echo did not show the written value within ``confirm_timeout_s``
                (the GX ignores invalid writes and re-publishes the old value).
            DeviceUnreachable: not connected, or the GX left a keepalive probe unanswered.
        """
        self._fresh()
        broker = self._joined()
        portal = self.portal_id
        assert portal is not None  # noqa: S101 - _fresh() needs a connected portal
        writes = setpoint_writes(
            setpoints, self.values.snapshot(), vebus_instance=self.vebus_instance
        )
        if not writes:
            return
        # Never retained (write_confirmed): a retained write would be replayed on every GX restart.
        await write_confirmed(
            broker, self.values,
            [EchoedWrite(path, value, w_topic(portal, path), encode_write(value))
             for path, value in writes.items()],
            shows=_echo_shows, timeout_s=self.options.confirm_timeout_s, device=self.name,
        )  # fmt: skip
        self._log.info("victron.written", writes=writes)

    # ----------------------------------------------------------------------- internals

    @property
    def _storm_path(self) -> str | None:
        storm = self.options.storm_alert
        return None if storm is None else storm.path

    def _joined(self) -> MqttBroker:
        if self._broker is None:
            self._broker = self._transports.mqtt.acquire(
                self.options.host, self.options.port, self.options.login())
        return self._broker

    def _fresh(self) -> None:
        broker = self._broker
        if broker is None or self.portal_id is None or self._sub is None:
            raise DeviceUnreachable(f"{self.name}: not connected")
        if not broker.connected:
            raise DeviceUnreachable(f"{self.name}: broker {broker.host}:{broker.port} disconnected")
        fault = liveness_fault(
            asyncio.get_running_loop().time(),
            last_message_at=self.values.last_at,
            probe_since=self._probe_since,
            keepalive_s=self.options.keepalive_s,
            reply_timeout_s=self.options.probe_timeout_s,
        )
        if fault is not None:
            raise DeviceUnreachable(f"{self.name}: GX stale ({fault})")

    def _probe_sent(self) -> None:
        # Noted before publishing: the answer may arrive before publish() returns.
        self._probe_since = outstanding_probe(
            self._probe_since, self.values.last_at, asyncio.get_running_loop().time()
        )

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        del retained
        portal = self.portal_id
        path = None if portal is None else parse_n_topic(topic, portal)
        if path is None:
            return
        now = asyncio.get_running_loop().time()
        if path == FULL_PUBLISH_COMPLETED:
            self.values.touch(now)
            self._full_published.set()
            return
        try:
            value = decode_value(payload)
        except ValueError as exc:
            self._log.debug("victron.bad_payload", topic=topic, error=str(exc))
            return
        self.values.put(path, value, now)

    async def _discover(self, broker: MqttBroker, timeout_s: float) -> str:
        found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_serial(topic: str, payload: bytes, retained: bool) -> None:
            del payload, retained
            portal = portal_of_serial_topic(topic)
            if portal is not None and not found.done():
                found.set_result(portal)

        sub = await broker.subscribe(SERIAL_DISCOVERY_FILTER, on_serial, qos=0)
        try:
            async with asyncio.timeout(timeout_s):
                portal = await found
        except TimeoutError as exc:
            raise DeviceUnreachable(
                f"{self.name}: no GX announced N/+/system/0/Serial within {timeout_s} s"
            ) from exc
        finally:
            await broker.unsubscribe(sub)
        self._log.info("victron.discovered", portal=portal)
        return portal

    async def _full_publish(self, broker: MqttBroker, portal: str, timeout_s: float) -> None:
        self._full_published.clear()
        self._probe_sent()
        await broker.publish(keepalive_topic(portal), KEEPALIVE_FULL, qos=0, timeout_s=timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                await self._full_published.wait()
        except TimeoutError as exc:
            raise DeviceUnreachable(
                f"{self.name}: GX {portal} sent no full_publish_completed within {timeout_s} s"
            ) from exc

    async def _keepalive_loop(self, broker: MqttBroker, portal: str) -> None:
        # After a reconnect the GX may have lost our keepalive (and we missed changes): ask for
        # a full publish until one completes; otherwise extend without a republish and probe.
        need_full = False
        while True:
            if need_full:
                try:
                    await self._full_publish(broker, portal, self.options.connect_timeout_s)
                    need_full = False
                    self._log.info("victron.republished", portal=portal)
                except DeviceUnreachable as exc:
                    self._log.warning("victron.full_publish_failed", error=str(exc))
                    await self._wait_reconnect(min(self.options.keepalive_s, 1.0))
                continue
            if await self._wait_reconnect(self.options.keepalive_s):
                need_full = True
                continue
            try:
                await self._probe(broker, portal)
            except DeviceUnreachable as exc:
                self._log.warning("victron.keepalive_failed", error=str(exc))

    async def _probe(self, broker: MqttBroker, portal: str) -> None:
        """Extend publishing and ask for one value: whatever arrives next is the GX's answer."""
        self._probe_sent()
        await broker.publish(keepalive_topic(portal), KEEPALIVE_SUPPRESS, qos=0)
        await broker.publish(r_topic(portal, PROBE_PATH), b"", qos=0)

    async def _wait_reconnect(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._reconnected.wait()
        except TimeoutError:
            return False
        self._reconnected.clear()
        return True


if TYPE_CHECKING:  # mypy proves the class fits the registry's protocol; nothing runs
    _fits_registry: DriverClass = VictronGxDriver
