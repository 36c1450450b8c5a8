"""A Victron GX (Venus OS) served over its own embedded MQTT broker, backed by the home's physics.

Test helpers (on a started `VictronGxDevice`):

- `await gx.broker_restart()` stops the embedded broker and starts it on the same port (every
  connection drops, retained messages are gone); returns once the GX's own client is back;
- `await gx.drop_connections()` resets every network client of the broker (the GX's in-process
  client stays) and of the Modbus face; returns how many were dropped;
- `gx.silent = True` plays a hung dbus-flashmq: the broker keeps every connection, but the GX
  publishes nothing and ignores keepalives, reads and writes until it is set back to False;
- `gx.faults` / `await gx.apply_faults(**fields)` / `gx.stats`: the fault plan and counters of the
  optional Modbus TCP face (simulator/faults.py); `gx.broker_restarts` counts broker restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import aiomqtt
import structlog
from amqtt.broker import Broker
from amqtt.errors import BrokerError
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulator.config import HomeConfig, VictronGxConfig
from simulator.devices.modbus_front import FrontedFaults, ModbusFront
from simulator.devices.victron_map import (
    FULL_PUBLISH_COMPLETED,
    SERIAL,
    SYSTEM_WRITABLE,
    UNIT_SYSTEM,
    VEBUS_WRITABLE,
    GxSettings,
    JsonValue,
    Keepalive,
    WriteAccepted,
    WriteIgnored,
    apply_write,
    changed_values,
    decode_write_payload,
    encode_value,
    full_publish_completed,
    initial_settings,
    on_keepalive,
    reconcile,
    register_write,
    select_paths,
    system_registers,
    topic_values,
    vebus_registers,
)
from simulator.faults import FaultPlan
from simulator.physics import HomePhysics

log = structlog.get_logger(__name__)

_CONNECT_TIMEOUT_S = 5.0
_RESTART_TIMEOUT_S = 5.0
_REBIND_RETRY_S = 0.05
_RECONNECT_DELAY_S = 0.2


async def shutdown_broker(broker: Broker, timeout_s: float = 3.0) -> None:
    """Shut an amqtt broker down, bounded in time.

    amqtt's client reader waits with asyncio.wait_for, which on Python 3.11 can swallow the
    cancel its shutdown sends and then wait forever; past the deadline the broker's remaining
    tasks are cancelled until they are gone, so a Ctrl-C or a test teardown never hangs.
    """
    try:
        async with asyncio.timeout(timeout_s):
            await broker.shutdown()
    except TimeoutError:
        current = asyncio.current_task()
        stuck = [t for t in asyncio.all_tasks()
                 if t is not current and "amqtt" in repr(t.get_coro())]
        while stuck:
            for task in stuck:
                task.cancel()
            _, pending = await asyncio.wait(stuck, timeout=0.1)
            stuck = list(pending)


class ClosingBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """An amqtt broker that closes every accepted socket when its connection handler ends.

    amqtt leaves the socket of a client that goes away before its CONNECT packet open (its
    NoDataError path never closes the writer), so it lingers until garbage collection and
    surfaces as a ResourceWarning somewhere else entirely.
    """

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str,
    ) -> None:
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            writer.close()  # a second close of a closed writer is a no-op


class LoginAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt authentication accepting one username and password (a secured GX broker)."""

    async def authenticate(self, *, session: Session) -> bool:
        """True only for the configured login."""
        config = cast("LoginAuthPlugin.Config", self.config)
        return (session.username == config.username
                and hmac.compare_digest((session.password or "").encode(), config.password.encode()))

    @dataclass
    class Config:
        """The one accepted login."""

        username: str = ""
        password: str = ""


def broker_config(host: str, port: int, login: tuple[str, str] | None = None) -> dict[str, Any]:
    """A quiet amqtt broker config: one TCP listener, no $SYS or packet logging; anonymous access,
    or only ``login`` (username, password) when given."""
    auth: dict[str, Any] = (
        {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}} if login is None
        else {f"{__name__}.LoginAuthPlugin": {"username": login[0], "password": login[1]}})
    return {"listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}}, "plugins": auth}


def broker_port(broker: Broker) -> int:
    """The TCP port an started amqtt broker's "default" listener is bound to."""
    # amqtt has no public getter: read the asyncio.Server's socket.
    server = cast("asyncio.Server", broker._servers["default"].instance)
    return int(server.sockets[0].getsockname()[1])


def abort_broker_clients(broker: Broker, *, keep: frozenset[str] = frozenset()) -> int:
    """Reset the TCP connection of every client connected to an amqtt broker; returns how many.

    Args:
        broker: A started amqtt broker.
        keep: Client ids to leave connected.
    """
    # amqtt has no public "kick client" call: abort the stream under each session's handler, and
    # the broker then sees an ordinary lost connection.
    dropped = 0
    for client_id, (_, handler) in list(broker._sessions.items()):
        stream = getattr(handler.writer, "_writer", None)
        if client_id in keep or not isinstance(stream, asyncio.StreamWriter):
            continue
        if not stream.transport.is_closing():
            stream.transport.abort()
            dropped += 1
    return dropped


class VictronGxDevice(FrontedFaults):
    """A GX device: dbus-flashmq MQTT on an in-process amqtt broker, plus an optional Modbus TCP face.

    The GX publishes through its own aiomqtt client connected to its broker: the retained Serial,
    a full publish after each keepalive (unless suppressed), changed values at most once per
    `change_interval_s` while a keepalive holds, and an immediate N/ echo after every W/ write.
    Settings live in the home's physics firmware, shared with every other face of the home.

    Args:
        home: The home the device belongs to (ratings).
        config: Portal id, VE.Bus instance, bind addresses and keepalive timeout.
        physics: The home's physics the device reports and controls.
        change_interval_s: Real seconds between change publishes (1 on Venus; tests shorten it).
        monotonic: Real clock in seconds for the keepalive (injectable for tests).
    """

    kind = "victron_gx"

    def __init__(
        self,
        home: HomeConfig,
        config: VictronGxConfig,
        physics: HomePhysics,
        *,
        change_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if change_interval_s <= 0:
            raise ValueError("change_interval_s must be > 0")
        self.id = config.id
        self.config = config
        self._login = (None if config.broker_username is None
                       else (config.broker_username, config.broker_password or ""))
        self.host = config.host
        self.port = config.port
        self.unit_id = 0
        self._front = ModbusFront(
            config.host, config.modbus_port or 0, FaultPlan(), f"victron-gx-{config.portal_id}-modbus"
        )
        self.portal_id = config.portal_id
        self.vebus_instance = config.vebus_instance
        self.keepalive_timeout_s = config.keepalive_timeout_s
        self._inverter_max_w = home.inverter_max_w
        self._physics = physics
        self._change_interval_s = change_interval_s
        self._monotonic = monotonic
        self._gx = initial_settings(physics.firmware, home.inverter_max_w)
        self._keepalive = Keepalive()
        self._published: dict[str, JsonValue] = {}
        # One batch at a time (full publish, change round, echo): publishes await, and a change
        # round racing a half-done full publish would send paths twice.
        self._batch = asyncio.Lock()
        self._broker: Broker | None = None
        self._client_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._modbus: ModbusTcpServer | None = None
        #: Change-publishing rounds run so far (alive or not): lets tests wait for "nothing sent".
        self.rounds = 0
        #: Restarts of the embedded broker (`broker_restart`).
        self.broker_restarts = 0
        #: True plays a hung dbus-flashmq: connections stay up, nothing is published or answered.
        self.silent = False

    @property
    def modbus_port(self) -> int | None:
        """Port of the Modbus TCP face (the bound one once started); None = no Modbus face."""
        return None if self.config.modbus_port is None else self._front.port

    # --- state --------------------------------------------------------------------------------

    def settings(self) -> GxSettings:
        """The GX's ESS settings now (reconciled with the home's firmware)."""
        self._gx = reconcile(self._gx, self._physics.firmware, self._inverter_max_w)
        return self._gx

    def values(self) -> dict[str, JsonValue]:
        """Every published path ("<service>/<instance>/<path>") and its value now."""
        return topic_values(
            self._physics.truth(),
            self.settings(),
            portal_id=self.portal_id,
            vebus_instance=self.vebus_instance,
        )

    @property
    def alive(self) -> bool:
        """True while a keepalive holds and values are published."""
        return self._keepalive.alive(self._monotonic())

    @property
    def connected(self) -> bool:
        """True while the GX's own client is connected to its broker."""
        return self._connected.is_set()

    def write(self, path: str, value: JsonValue) -> WriteAccepted | WriteIgnored:
        """Apply a W/ write as the broker would deliver it (validated; the firmware changes on success)."""
        result = apply_write(
            self.settings(),
            self._physics.firmware,
            path,
            value,
            vebus_instance=self.vebus_instance,
            inverter_max_w=self._inverter_max_w,
        )
        if isinstance(result, WriteAccepted):
            self._physics.apply_firmware(result.firmware)
            self._gx = result.gx
        return result

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the broker (and Modbus face), then the GX's client; return once Serial is retained.

        With port 0, `port` (and `modbus_port`) then hold the bound ports; a restart after
        `stop()` binds the same ports again.
        """
        # Fresh primitives: a restart may happen on another event loop (one per test).
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._batch = asyncio.Lock()
        try:
            broker = ClosingBroker(broker_config(self.host, self.port, self._login))
            await broker.start()
            self._broker = broker
            self.port = broker_port(broker)
            self._client_task = asyncio.create_task(
                self._run_client(), name=f"victron-gx-{self.portal_id}"
            )
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await self._connected.wait()
            if self.config.modbus_port is not None:
                await self._start_modbus()
        except BaseException:
            await self.stop()
            raise
        log.info("victron gx started", portal=self.portal_id, port=self.port, modbus=self.modbus_port)

    async def stop(self) -> None:
        """Disconnect the GX's client, shut the broker and the Modbus face down (safe to call twice)."""
        if self._client_task is not None:
            task, self._client_task = self._client_task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await shutdown_broker(broker)
        await self._front.stop()
        if self._modbus is not None:
            server, self._modbus = self._modbus, None
            await server.shutdown()  # type: ignore[no-untyped-call]
        self._keepalive = Keepalive()
        self._published.clear()

    # --- faults -------------------------------------------------------------------------------

    async def broker_restart(self) -> None:
        """Stop the embedded broker and start it again on the same port.

        Every client connection drops and retained messages are lost, as when Venus OS restarts
        flashmq; the GX's own client reconnects and republishes its retained Serial. Returns once
        that client is connected again.

        Raises:
            RuntimeError: the device is not started.
            TimeoutError: the broker or the GX's client did not come back in time.
        """
        if self._broker is None:
            raise RuntimeError("the GX is not started")
        broker, self._broker = self._broker, None
        await shutdown_broker(broker)
        self.broker_restarts += 1
        async with asyncio.timeout(_RESTART_TIMEOUT_S):
            await self._disconnected.wait()
            while True:
                fresh = ClosingBroker(broker_config(self.host, self.port, self._login))
                try:
                    await fresh.start()
                except BrokerError:
                    # The old listening socket may not be gone yet: same port or nothing.
                    await asyncio.sleep(_REBIND_RETRY_S)
                    continue
                self._broker = fresh
                break
            await self._connected.wait()
        log.info("victron gx broker restarted", portal=self.portal_id, port=self.port)

    async def drop_connections(self) -> int:
        """Reset every network client of the broker and of the Modbus face; returns how many.

        The GX's own in-process client is not a network client and stays connected.
        """
        dropped = 0
        if self._broker is not None:
            dropped = abort_broker_clients(self._broker, keep=frozenset({self._client_id}))
        return dropped + await self._front.drop_connections()

    # --- MQTT -----------------------------------------------------------------------------------

    async def _run_client(self) -> None:
        # The broker is in-process, so the connection only drops if it is shut down under us;
        # retry quietly rather than leave a GX that never publishes again.
        portal = self.portal_id
        while True:
            client = aiomqtt.Client(
                self.host, self.port, identifier=self._client_id, timeout=_CONNECT_TIMEOUT_S,
                username=self.config.broker_username, password=self.config.broker_password,
            )
            try:
                async with client:
                    await client.publish(
                        f"N/{portal}/{SERIAL}", encode_value(portal), qos=1, retain=True
                    )
                    await client.subscribe(f"R/{portal}/#")
                    await client.subscribe(f"W/{portal}/#")
                    self._disconnected.clear()
                    self._connected.set()
                    changes = asyncio.create_task(
                        self._publish_changes(client), name=f"victron-gx-{portal}-changes"
                    )
                    try:
                        async for message in client.messages:
                            await self._on_message(client, str(message.topic), message.payload)
                    finally:
                        changes.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await changes
            except aiomqtt.MqttError as exc:
                log.warning("victron gx client lost its broker", portal=portal, error=str(exc))
            finally:
                self._connected.clear()
                self._disconnected.set()
            await asyncio.sleep(_RECONNECT_DELAY_S)

    @property
    def _client_id(self) -> str:
        return f"gx-{self.portal_id}"

    async def _publish(self, client: aiomqtt.Client, path: str, value: JsonValue) -> None:
        await client.publish(
            f"N/{self.portal_id}/{path}", encode_value(value), qos=0, retain=path == SERIAL
        )
        self._published[path] = value

    async def _publish_changes(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self._change_interval_s)
            if self.alive and not self.silent:
                async with self._batch:
                    for path, value in changed_values(self._published, self.values()).items():
                        await self._publish(client, path, value)
            self.rounds += 1

    async def _on_message(self, client: aiomqtt.Client, topic: str, data: bytes) -> None:
        if self.silent:
            return
        portal = self.portal_id
        # amqtt also delivers retained messages matching other clients' filters: keep ours only.
        if topic == f"R/{portal}/keepalive":
            self._keepalive, request = on_keepalive(
                self._keepalive, data, now=self._monotonic(), timeout_s=self.keepalive_timeout_s
            )
            if request.full_publish:
                async with self._batch:
                    for path, value in self.values().items():
                        await self._publish(client, path, value)
                    await client.publish(
                        f"N/{portal}/{FULL_PUBLISH_COMPLETED}",
                        full_publish_completed(time.time(), request.echo),
                        qos=0,
                    )
        elif topic.startswith(f"R/{portal}/"):
            wanted = select_paths(self.values(), topic.removeprefix(f"R/{portal}/"))
            async with self._batch:
                for path, value in wanted.items():
                    await self._publish(client, path, value)
        elif topic.startswith(f"W/{portal}/"):
            path = topic.removeprefix(f"W/{portal}/")
            decoded = decode_write_payload(data)
            result = decoded if isinstance(decoded, WriteIgnored) else self.write(path, decoded)
            if isinstance(result, WriteIgnored):
                log.info("victron gx ignored a write", path=path, reason=result.reason)
            current = self.values()
            if path in current:
                # The echo a client confirms on; after an ignored write it shows the old value.
                async with self._batch:
                    await self._publish(client, path, current[path])

    # --- Modbus TCP -----------------------------------------------------------------------------

    async def _start_modbus(self) -> None:
        truth = self._physics.truth()
        system = system_registers(truth, self._gx)
        vebus = vebus_registers(truth, self._gx)

        def blocks(regs: dict[int, int], writable: frozenset[int]) -> list[SimData]:
            return [
                SimData(a, values=regs[a], datatype=DataType.REGISTERS, readonly=a not in writable)
                for a in sorted(regs)
            ]

        devices = [
            SimDevice(
                id=UNIT_SYSTEM,
                simdata=blocks(system, SYSTEM_WRITABLE),
                action=self._modbus_action(vebus=False),
            ),
            SimDevice(
                id=self.vebus_instance,
                simdata=blocks(vebus, VEBUS_WRITABLE),
                action=self._modbus_action(vebus=True),
            ),
        ]
        # pymodbus serves on an internal port; the front owns the public one and plays the faults.
        server = ModbusTcpServer(devices, address=(self.host, 0))
        await server.serve_forever(background=True)
        self._modbus = server
        listener = cast("asyncio.Server", server.transport)
        await self._front.start(int(listener.sockets[0].getsockname()[1]))

    def _modbus_action(self, *, vebus: bool) -> Callable[..., Any]:
        async def action(  # noqa: PLR0917 - signature fixed by pymodbus SimDevice
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            del function_code
            if set_values is not None and self.faults.ignore_writes:
                offset = address - start_address
                set_values[:] = registers[offset : offset + count]  # type: ignore[assignment]
                return None
            if set_values is not None:
                writes = []
                for i, raw in enumerate(set_values):
                    try:
                        writes.append(
                            register_write(
                                address + i,
                                int(raw),
                                vebus=vebus,
                                vebus_instance=self.vebus_instance,
                            )
                        )
                    except KeyError:
                        return ExcCodes.ILLEGAL_ADDRESS
                # Validate all first: a rejected register leaves every setting as it was.
                gx, fw = self.settings(), self._physics.firmware
                for path, value in writes:
                    result = apply_write(
                        gx,
                        fw,
                        path,
                        value,
                        vebus_instance=self.vebus_instance,
                        inverter_max_w=self._inverter_max_w,
                    )
                    if isinstance(result, WriteIgnored):
                        return ExcCodes.ILLEGAL_VALUE
                    gx, fw = result.gx, result.firmware
                self._physics.apply_firmware(fw)
                self._gx = gx
                return None
            truth = self._physics.truth()
            regs = (
                vebus_registers(truth, self.settings())
                if vebus
                else system_registers(truth, self.settings())
            )
            for reg, raw in regs.items():
                offset = reg - start_address
                if 0 <= offset < len(registers):
                    registers[offset] = raw
            return None

        return action
