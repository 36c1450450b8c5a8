"""A generic MQTT battery: a client of an external broker publishing JSON state, taking set/* commands."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt
import structlog

from simulator.config import HomeConfig, MqttBatteryConfig
from simulator.devices.mqtt_battery_map import (
    AVAILABLE,
    NOT_AVAILABLE,
    CommandIgnored,
    apply_command,
    availability_topic,
    command_filter,
    encode_state,
    state_topic,
)
from simulator.physics import HomePhysics

log = structlog.get_logger(__name__)

#: Real seconds between reconnect attempts: short first, then capped (aiomqtt never reconnects).
RECONNECT_DELAYS_S: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0)
_CONNECT_TIMEOUT_S = 2.0
_OFFLINE_TIMEOUT_S = 1.0


class MqttBatteryDevice:
    """A battery that talks MQTT to a broker it does not own, and survives that broker restarting.

    Topics under `base_topic`: `availability` ("online" retained on connect, "offline" retained as
    the will and on a clean stop), `state` (JSON every publish_interval_s and right after each valid
    command), `set/reserve`, `set/grid_charging`, `set/export_limit` (JSON; retained commands are
    ignored, as stale). Settings live in the home's physics firmware.

    Args:
        home: The home the device belongs to (ratings).
        config: Broker address, base topic and publish interval.
        physics: The home's physics the device reports and controls.
        reconnect_delays_s: Waits between connection attempts; the last one repeats.
    """

    kind = "mqtt_battery"

    def __init__(
        self,
        home: HomeConfig,
        config: MqttBatteryConfig,
        physics: HomePhysics,
        *,
        reconnect_delays_s: tuple[float, ...] = RECONNECT_DELAYS_S,
    ) -> None:
        if not reconnect_delays_s or min(reconnect_delays_s) < 0:
            raise ValueError("reconnect_delays_s must be non-empty and >= 0")
        self.id = config.id
        self.config = config
        self.host = config.broker_host
        self.port = config.broker_port
        self.unit_id = 0
        self.base_topic = config.base_topic
        self.client_id = f"sim-{home.id}-{config.id}"
        self._inverter_max_w = home.inverter_max_w
        self._physics = physics
        self._delays = reconnect_delays_s
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        #: Successful connections so far (a reconnect after a broker restart adds one).
        self.connections = 0

    @property
    def connected(self) -> bool:
        """True while connected to the broker."""
        return self._connected.is_set()

    async def wait_connected(self, timeout_s: float = 5.0) -> None:
        """Wait until connected (TimeoutError after timeout_s real seconds)."""
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    def command(self, name: str, payload: bytes) -> bool:
        """Apply a set/<name> command as the broker would deliver it; True if it was valid."""
        result = apply_command(
            self._physics.firmware, name, payload, inverter_max_w=self._inverter_max_w
        )
        if isinstance(result, CommandIgnored):
            log.info("mqtt battery ignored a command", device=self.id, reason=result.reason)
            return False
        self._physics.apply_firmware(result)
        self._wake.set()  # the echo: publish the new state now
        return True

    async def start(self) -> None:
        """Start the connection loop; it connects in the background (see `wait_connected`)."""
        if self._task is None:
            # Fresh primitives: a restart may happen on another event loop (one per test).
            self._connected = asyncio.Event()
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"mqtt-battery-{self.client_id}")

    async def stop(self) -> None:
        """Publish "offline" (best effort), disconnect and end the loop (safe to call twice)."""
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(_OFFLINE_TIMEOUT_S):
                    await client.publish(
                        availability_topic(self.base_topic), NOT_AVAILABLE, qos=1, retain=True
                    )
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        # The documented aiomqtt pattern: connect, subscribe, iterate; on MqttError wait and
        # start over (subscriptions are re-issued each time: sessions are clean).
        base = self.base_topic
        failures = 0
        while True:
            client = aiomqtt.Client(
                self.host,
                self.port,
                identifier=self.client_id,
                username=self.config.broker_username,
                password=self.config.broker_password,
                will=aiomqtt.Will(availability_topic(base), NOT_AVAILABLE, qos=1, retain=True),
                timeout=_CONNECT_TIMEOUT_S,
            )
            try:
                async with client:
                    await client.subscribe(command_filter(base), qos=1)
                    await client.publish(availability_topic(base), AVAILABLE, qos=1, retain=True)
                    self._client = client
                    self._connected.set()
                    self.connections += 1
                    failures = 0
                    log.info("mqtt battery connected", device=self.id, broker=f"{self.host}:{self.port}")
                    publisher = asyncio.create_task(
                        self._publish_state(client), name=f"mqtt-battery-{self.client_id}-state"
                    )
                    try:
                        async for message in client.messages:
                            self._on_message(str(message.topic), message.payload, message.retain)
                    finally:
                        publisher.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await publisher
            except aiomqtt.MqttError as exc:
                log.info("mqtt battery disconnected", device=self.id, error=str(exc))
            finally:
                self._client = None
                self._connected.clear()
            await asyncio.sleep(self._delays[min(failures, len(self._delays) - 1)])
            failures += 1

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        prefix = f"{self.base_topic}/set/"
        # Filter by our own subscription: amqtt delivers retained messages of other clients' filters.
        name = topic.removeprefix(prefix)
        if not topic.startswith(prefix) or "/" in name or retained:
            return
        self.command(name, payload)

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        topic = state_topic(self.base_topic)
        interval = self.config.publish_interval_s
        while True:
            self._wake.clear()
            try:
                await client.publish(topic, encode_state(self._physics.truth()), qos=0)
            except aiomqtt.MqttError:
                return  # the connection is gone; the loop in _run reconnects
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
