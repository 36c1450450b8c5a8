"""`energy-gateway scan` on loopback: SunSpec and profile devices found, one-client devices handled."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
import yaml

from drivers.base import Capability
from drivers.scan import probe_port, render, scan
from gateway.core.config import DeviceConfig
from simulator import (
    HomeConfig,
    HuaweiSun2000Config,
    SimDeviceConfig,
    Simulator,
    SimulatorConfig,
    SungrowShConfig,
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        start=datetime(2026, 6, 21, 12, tzinfo=UTC), tick_s=0,
        homes=[HomeConfig(id="h", devices=[
            SimDeviceConfig(id="sunspec", kind="sunspec", serial_number="SS1"),
            SungrowShConfig(id="sungrow", kind="sungrow_sh", serial_number="SG1", answer_delay_s=0),
            HuaweiSun2000Config(id="huawei", kind="huawei_sun2000", serial_number="HW1",
                                settle_s=0.05, answer_delay_s=0.002),
        ])],
    )  # fmt: skip
    async with Simulator(config) as simulator:
        yield simulator


def port(sim: Simulator, device: str) -> int:
    return sim.endpoint(f"h/{device}").port


async def test_scan_finds_each_family_and_prints_a_ready_snippet(sim: Simulator) -> None:
    closed = free_port()
    ports = [port(sim, "sunspec"), port(sim, "sungrow"), port(sim, "huawei"), closed]
    result = await scan("127.0.0.1", ports, [1], timeout_s=0.5, total_s=20, settle_s=0.05)
    kinds = {(f.port, f.type, f.options.get("profile")) for f in result.found}
    assert kinds == {
        (ports[0], "sunspec", None),
        (ports[1], "profile", "sungrow_sh_rt"),
        (ports[2], "profile", "huawei_sun2000"),
    }
    by_serial = {f.info.serial_number: f for f in result.found}
    assert set(by_serial) == {"SS1", "SG1", "HW1"}
    assert Capability.BACKUP_RESERVE in by_serial["HW1"].capabilities
    assert by_serial["HW1"].single_client
    text = render(result, total_s=20)
    assert f"# port {closed}: connection refused" in text
    assert "serves one Modbus TCP client at a time" in text
    devices = yaml.safe_load(text)["devices"]
    assert len(devices) == 3
    for device in devices:  # ready to paste: each entry is a valid device of the gateway config
        DeviceConfig.model_validate(device)
    assert [d["name"] for d in devices] == ["simco-simhybrid-8k", "sungrow-sh10rt", "huawei-sun2000-10ktl-m1"]


async def test_scan_backs_off_a_one_client_device_that_is_busy(sim: Simulator) -> None:
    huawei = port(sim, "huawei")
    reader, writer = await asyncio.open_connection("127.0.0.1", huawei)  # another client holds it
    try:
        assert await probe_port("127.0.0.1", huawei) == "reset"
        said: list[str] = []
        result = await scan("127.0.0.1", [huawei], [1], timeout_s=0.5, total_s=10, settle_s=0.05,
                            busy_backoff_s=(0.05, 0.1), say=said.append)  # fmt: skip
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    del reader
    assert result.found == []
    assert said
    assert all("serves one Modbus client at a time" in line for line in said)
    assert "busy with another client" in render(result, total_s=10)
    twin = sim.homes["h"].register_twin("huawei")
    assert twin.stats.refused >= 1  # it was the device that said no


async def test_scan_stops_at_its_total_timeout(sim: Simulator) -> None:
    twin = sim.homes["h"].register_twin("sungrow")
    await twin.apply_faults(half_open=True)  # accepts, never answers
    result = await scan("127.0.0.1", [port(sim, "sungrow")], list(range(1, 30)), timeout_s=0.2,
                        total_s=0.5, settle_s=0)  # fmt: skip
    assert result.timed_out
    assert "stopped after its total timeout (0.5 s)" in render(result, total_s=0.5)


@pytest.mark.parametrize(("ports", "error"), [("0", "outside 1..65535"), ("abc", "not a number")])
def test_scan_cli_refuses_bad_ports(ports: str, error: str, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    assert main(["scan", "127.0.0.1", "--ports", ports]) == 2
    assert error in capsys.readouterr().err
