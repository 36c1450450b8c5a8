"""Regression: a cancelled Modbus transaction always stops its task.

pymodbus waits for each answer with asyncio.wait_for, which on Python 3.11 drops a cancellation
that races the answer; before the transport re-delivered it, a poller cancelled at shutdown kept
polling forever and the gateway's cleanup hung.
"""

from __future__ import annotations

import asyncio

from drivers.transport.modbus import ModbusPool
from simulator import Simulator


async def test_cancelling_reads_at_every_phase_stops_the_task(sim: Simulator) -> None:
    endpoint_ref = sim.endpoint("home-1001/inverter")
    device = sim.homes["home-1001"].device("inverter")
    pool = ModbusPool(timeout_s=1.0)
    endpoint = pool.acquire(endpoint_ref.host, endpoint_ref.port)
    address = device.model_address(103)
    try:
        await endpoint.read_holding(endpoint_ref.unit_id, address, 10)  # connected

        async def poll_forever() -> None:
            while True:
                await endpoint.read_holding(endpoint_ref.unit_id, address, 10)

        for i in range(200):
            task = asyncio.create_task(poll_forever())
            # cancel at a spread of moments, including the instant an answer lands
            for _ in range(i % 7):
                await asyncio.sleep(0)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2.0)
            assert task in done, f"iteration {i}: the cancelled task kept running"
            assert task.cancelled()
    finally:
        await pool.release(endpoint)
        await pool.close()
