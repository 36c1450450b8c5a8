"""The Modbus TCP proxy: third parties read (and, if allowed, write) through the gateway's one
connection to the device."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from gateway.core.config import Config
from gateway.web.keys import PROXIES
from simulator import Simulator
from tests.helpers import SITE_ID, eventually, gateway_config
from tests.integration.conftest import GatewayFactory, RunningGateway


def with_proxy(config: Config, *, writes: bool) -> Config:
    site = config.sites[0]
    device = site.devices[0].model_copy(update={"proxy_port": 0, "proxy_writes": writes})
    return config.model_copy(update={"sites": [site.model_copy(update={"devices": [device]})]})


def proxy_port(gateway: RunningGateway) -> int:
    return gateway.app[PROXIES][(SITE_ID, "inverter")].port


async def test_reads_pass_through_and_pysunspec2_scans_the_proxy(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    import sunspec2.modbus.client as sunspec_client

    config = with_proxy(gateway_config(sim, tmp_path / "data"), writes=False)
    async with start_gateway(config) as gateway:
        port = proxy_port(gateway)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, timeout=2)
        await client.connect()
        try:
            marker = await client.read_holding_registers(40000, count=2, device_id=1)
            assert marker.registers == [0x5375, 0x6E53]
            device = sim.homes["home-1001"].device("inverter")
            reserve_at = device.model_address(124) + 7
            refused = await client.write_register(reserve_at, 33, device_id=1)
            assert refused.isError()
            assert refused.exception_code == 1  # writes are off by default
            assert sim.homes["home-1001"].truth().reserve_pct == 20
        finally:
            client.close()

        def scan() -> list[int]:
            dev = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1",
                                                              ipport=port, timeout=2)
            try:
                dev.scan()
                return sorted(k for k in dev.models if isinstance(k, int))
            finally:
                dev.close()

        assert await asyncio.to_thread(scan) == [1, 103, 120, 123, 124, 203, 802]


async def test_allowed_writes_reach_the_device_and_count_as_drift(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path
) -> None:
    config = with_proxy(gateway_config(sim, tmp_path / "data"), writes=True)
    home = sim.homes["home-1001"]
    async with start_gateway(config) as gateway:
        client = AsyncModbusTcpClient("127.0.0.1", port=proxy_port(gateway), retries=0, timeout=2)
        await client.connect()
        try:
            reserve_at = home.device("inverter").model_address(124) + 7
            reply = await client.write_register(reserve_at, 33, device_id=1)
            assert not reply.isError()
        finally:
            client.close()
        # someone else's write is drift: logged, counted and put back to the desired 20 %
        await eventually(lambda: gateway.site.drift_count >= 1)
        await eventually(lambda: home.truth().reserve_pct == 20)


async def test_stopping_with_a_client_connected_logs_no_error(
    start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client still connected when the gateway stops is dropped quietly (no asyncio
    "Exception in callback ... CancelledError" traceback at error level)."""
    config = with_proxy(gateway_config(sim, tmp_path / "data"), writes=False)
    async with start_gateway(config) as gateway:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port(gateway))
        proxy = gateway.app[PROXIES][(SITE_ID, "inverter")]
        await eventually(lambda: proxy._clients)
    assert await reader.read() == b""  # the proxy closed the connection
    writer.close()
    await writer.wait_closed()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
