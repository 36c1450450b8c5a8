"""A throwaway MQTT broker on a free loopback port for tests: Mosquitto when installed, else amqtt."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from amqtt.broker import Broker
from amqtt.errors import BrokerError

from simulator.devices.victron_gx import ClosingBroker, broker_config, shutdown_broker

HOST = "127.0.0.1"
MOSQUITTO_FALLBACK = "/usr/sbin/mosquitto"
_READY_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 5.0
_PORT_ATTEMPTS = 5

BrokerKind = Literal["mosquitto", "amqtt"]


def mosquitto_path() -> str | None:
    """The mosquitto binary (PATH first, then /usr/sbin), or None when not installed.

    ENERGY_GATEWAY_TEST_BROKER=amqtt runs the suite as on a machine without Mosquitto.
    """
    if os.environ.get("ENERGY_GATEWAY_TEST_BROKER") == "amqtt":
        return None
    found = shutil.which("mosquitto")
    if found:
        return found
    return MOSQUITTO_FALLBACK if os.access(MOSQUITTO_FALLBACK, os.X_OK) else None


def free_port() -> int:
    """A TCP port free on the loopback right now (bound and released; may be taken again later)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class RunningBroker(tuple[str, int]):
    """A running test broker; unpacks as `(host, port)` and can be stopped and started again.

    `restart()` stops the broker and starts it on the same port (clients see a broker restart:
    connections drop, retained messages and sessions are gone).
    """

    kind: BrokerKind
    _proc: asyncio.subprocess.Process | None
    _amqtt: Broker | None

    def __new__(cls, kind: BrokerKind, port: int) -> RunningBroker:
        self = super().__new__(cls, (HOST, port))
        self.kind = kind
        self._proc = None
        self._amqtt = None
        return self

    @property
    def host(self) -> str:
        """Loopback address the broker listens on."""
        return self[0]

    @property
    def port(self) -> int:
        """TCP port the broker listens on."""
        return self[1]

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._proc is not None or self._amqtt is not None

    async def start(self) -> None:
        """Start the broker on this port and wait until it accepts connections.

        Raises:
            OSError: the port is taken (or mosquitto exited early).
            TimeoutError: it did not accept connections in time.
        """
        if self.running:
            return
        if self.kind == "amqtt":
            broker = ClosingBroker(broker_config(self.host, self.port))
            try:
                await broker.start()
            except BrokerError as exc:
                raise OSError(f"amqtt could not listen on port {self.port}") from exc
            self._amqtt = broker
            return
        exe = mosquitto_path()
        if exe is None:
            raise RuntimeError("mosquitto is not installed")
        proc = await asyncio.create_subprocess_exec(
            exe, "-p", str(self.port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self._proc = proc
        try:
            await self._wait_ready(proc)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, proc: asyncio.subprocess.Process) -> None:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            while True:
                if proc.returncode is not None:
                    raise OSError(f"mosquitto exited with {proc.returncode} (port {self.port} taken?)")
                try:
                    _, writer = await asyncio.open_connection(self.host, self.port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                # Another process may own a port that mosquitto failed to bind: check it lives.
                await asyncio.sleep(0.02)
                if proc.returncode is not None:
                    raise OSError(f"mosquitto exited with {proc.returncode} (port {self.port} taken?)")
                return

    async def stop(self) -> None:
        """Stop the broker (mosquitto: SIGTERM, then SIGKILL after a grace period); idempotent."""
        if self._amqtt is not None:
            broker, self._amqtt = self._amqtt, None
            await shutdown_broker(broker)
        if self._proc is not None:
            proc, self._proc = self._proc, None
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            try:
                async with asyncio.timeout(_STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def restart(self) -> None:
        """Stop the broker, then start it again on the same port (retrying while the port frees up)."""
        await self.stop()
        async with asyncio.timeout(_READY_TIMEOUT_S):
            while True:
                try:
                    await self.start()
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                return


@asynccontextmanager
async def mqtt_broker(kind: BrokerKind | None = None) -> AsyncIterator[RunningBroker]:
    """Run a broker on a free loopback port for the body: `async with mqtt_broker() as (host, port):`.

    Args:
        kind: "mosquitto" or "amqtt"; None = mosquitto when installed, else amqtt in-process.
    """
    chosen: BrokerKind = kind or ("mosquitto" if mosquitto_path() else "amqtt")
    broker: RunningBroker | None = None
    for attempt in range(_PORT_ATTEMPTS):
        candidate = RunningBroker(chosen, free_port())
        try:
            await candidate.start()
        except OSError:
            if attempt == _PORT_ATTEMPTS - 1:
                raise
            continue
        broker = candidate
        break
    assert broker is not None
    try:
        yield broker
    finally:
        await broker.stop()
