"""ModbusPool against a bare pymodbus server on loopback: queueing, errors, timeouts, reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.errors import DeviceRejected, DeviceUnreachable
from drivers.transport import ModbusPool, Priority, Transports
from drivers.transport.modbus import _PriorityGate

BASE = 40000
READ_ONLY = 40090


@dataclass
class Bench:
    """A pymodbus server with a request log and a valve that can hold requests in flight."""

    port: int = 0
    seen: list[tuple[int, int]] = field(default_factory=list)  # (function code, address)
    valve: asyncio.Event = field(default_factory=asyncio.Event)
    server: ModbusTcpServer | None = None

    async def action(  # signature fixed by pymodbus SimDevice
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code == 6 and set_values is None:
            return None  # pymodbus' echo read of an FC6 write
        self.seen.append((function_code, address))
        await self.valve.wait()
        if set_values is not None and int(set_values[0]) == 0xDEAD:
            return ExcCodes.ILLEGAL_VALUE
        return None

    async def start(self) -> None:
        device = SimDevice(
            id=1,
            simdata=[
                SimData(BASE, count=50, values=7, datatype=DataType.REGISTERS),
                SimData(READ_ONLY, count=5, values=9, datatype=DataType.UINT16, readonly=True),
            ],
            action=self.action,
        )
        self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)
        listener = cast("asyncio.Server", self.server.transport)
        self.port = int(listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.shutdown()  # type: ignore[no-untyped-call]


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    b = Bench()
    b.valve.set()
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
async def pool() -> AsyncIterator[ModbusPool]:
    p = ModbusPool(timeout_s=0.5, backoff_max_s=0.2)
    yield p
    await p.close()


async def until(check: Callable[[], Awaitable[bool] | bool], deadline_s: float = 3.0) -> None:
    """Poll ``check`` until it holds; fail after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > end:
            pytest.fail("condition not met before the deadline")
        await asyncio.sleep(0.01)


async def test_read_and_write_round_trip(bench: Bench, pool: ModbusPool) -> None:
    ep = pool.acquire("127.0.0.1", bench.port)
    assert await ep.read_holding(1, BASE, 3) == [7, 7, 7]
    await ep.write(1, BASE + 1, [42])
    await ep.write(1, BASE + 2, [43, 44])
    assert await ep.read_holding(1, BASE, 4) == [7, 42, 43, 44]
    assert (6, BASE + 1) in bench.seen
    assert (16, BASE + 2) in bench.seen
    assert ep.connected


async def test_exception_replies_become_device_rejected(bench: Bench, pool: ModbusPool) -> None:
    ep = pool.acquire("127.0.0.1", bench.port)
    with pytest.raises(DeviceRejected) as outside:
        await ep.read_holding(1, 30000, 2)
    assert outside.value.code == 2
    with pytest.raises(DeviceRejected) as illegal:
        await ep.write(1, BASE, [0xDEAD])
    assert illegal.value.code == 3
    with pytest.raises(DeviceRejected) as read_only:
        await ep.write(1, READ_ONLY, [1])
    assert read_only.value.code == 2
    assert not isinstance(illegal.value, DeviceUnreachable)  # permanent: never retried
    assert await ep.read_holding(1, BASE, 1) == [7]  # the connection survives rejections


async def test_down_device_is_unreachable_within_the_timeout(pool: ModbusPool) -> None:
    bench = Bench()
    await bench.start()
    port = bench.port
    await bench.stop()  # nothing listens on the port now
    ep = pool.acquire("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeviceUnreachable) as info:
        await ep.read_holding(1, BASE, 1)
    assert loop.time() - started < pool.timeout_s + 0.3
    assert type(info.value) is DeviceUnreachable  # the transient class, retried with backoff
    assert not ep.connected


async def test_restarted_server_is_reconnected(bench: Bench, pool: ModbusPool) -> None:
    ep = pool.acquire("127.0.0.1", bench.port)
    assert await ep.read_holding(1, BASE, 1) == [7]
    await bench.stop()
    with pytest.raises(DeviceUnreachable):
        await ep.read_holding(1, BASE, 1)
    await bench.start()  # same port

    async def answers() -> bool:
        try:
            return await ep.read_holding(1, BASE, 1) == [7]
        except DeviceUnreachable:
            return False

    await until(answers, deadline_s=pool.backoff_max_s + 2 * pool.timeout_s + 1)
    assert ep.connected


async def test_timeout_drops_the_connection_and_recovers(bench: Bench, pool: ModbusPool) -> None:
    ep = pool.acquire("127.0.0.1", bench.port)
    bench.valve.clear()  # the server sits on every request
    with pytest.raises(DeviceUnreachable, match="no answer"):
        await ep.read_holding(1, BASE, 1, timeout_s=0.1)
    bench.valve.set()
    assert await ep.read_holding(1, BASE, 1) == [7]


async def test_commands_go_ahead_of_queued_polls(bench: Bench, pool: ModbusPool) -> None:
    ep = pool.acquire("127.0.0.1", bench.port)
    await ep.read_holding(1, BASE, 1)
    bench.seen.clear()
    bench.valve.clear()
    done: list[str] = []

    async def poll(i: int) -> None:
        await ep.read_holding(1, BASE + 10 + i, 1, timeout_s=2)
        done.append(f"poll{i}")

    async def command() -> None:
        await ep.write(1, BASE + 30, [5], timeout_s=2)
        done.append("command")

    polls = [asyncio.create_task(poll(i)) for i in range(4)]
    await until(lambda: len(bench.seen) == 1 and ep.queued == 3)  # poll0 in flight, 3 queued
    cmd = asyncio.create_task(command())
    await until(lambda: ep.queued == 4)
    bench.valve.set()
    await asyncio.gather(*polls, cmd)
    assert bench.seen[0] == (3, BASE + 10)
    assert bench.seen[1] == (6, BASE + 30)  # the command overtook poll1..poll3
    assert bench.seen[2:] == [(3, BASE + 11), (3, BASE + 12), (3, BASE + 13)]
    assert done == ["poll0", "command", "poll1", "poll2", "poll3"]


async def test_a_cancelled_waiter_does_not_wedge_the_queue(bench: Bench, pool: ModbusPool) -> None:
    ep = pool.acquire("127.0.0.1", bench.port)
    await ep.read_holding(1, BASE, 1)
    bench.valve.clear()
    first = asyncio.create_task(ep.read_holding(1, BASE, 1, timeout_s=2))
    await until(lambda: len(bench.seen) == 2)
    waiter = asyncio.create_task(ep.read_holding(1, BASE, 1, priority=Priority.COMMAND))
    await until(lambda: ep.queued == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    bench.valve.set()
    assert await first == [7]
    assert await ep.read_holding(1, BASE, 1) == [7]
    assert ep.queued == 0


async def test_endpoints_are_shared_and_ref_counted(bench: Bench) -> None:
    transports = Transports(modbus=ModbusPool(timeout_s=0.5))
    pool = transports.modbus
    a = pool.acquire("127.0.0.1", bench.port)
    b = pool.acquire("127.0.0.1", bench.port)
    assert a is b
    await a.read_holding(1, BASE, 1)
    await pool.release(a)
    assert [b.connected] == [True]
    assert await b.read_holding(1, BASE, 1) == [7]
    await pool.release(b)
    assert [b.connected] == [False]
    with pytest.raises(DeviceUnreachable):
        await b.read_holding(1, BASE, 1)
    c = pool.acquire("127.0.0.1", bench.port)
    assert c is not a
    assert await c.read_holding(1, BASE, 1) == [7]
    await transports.close()
    assert not c.connected


async def test_a_release_racing_a_cancelled_waiter_leaves_the_gate_free() -> None:
    # The waiter is cancelled, then the holder releases before the waiter runs again: the
    # release pops (and skips) the cancelled future, so the waiter must not try to remove it.
    gate = _PriorityGate()
    held = gate.hold(Priority.POLL)
    await held.__aenter__()

    async def wait_turn() -> None:
        async with gate.hold(Priority.COMMAND):
            pass

    waiter = asyncio.create_task(wait_turn())
    await asyncio.sleep(0)
    assert gate.waiting == 1
    waiter.cancel()
    await held.__aexit__(None, None, None)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with asyncio.timeout(1):
        async with gate.hold(Priority.POLL):
            assert gate.waiting == 0
