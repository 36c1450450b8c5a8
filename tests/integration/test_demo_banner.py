"""The demo banner describes a site whose device is offline instead of crashing on it."""

from __future__ import annotations

import socket
from pathlib import Path

from gateway import cli
from gateway.core.config import DeviceConfig
from simulator import Simulator
from tests.helpers import SITE_ID, gateway_config
from tests.integration.conftest import GatewayFactory


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_banner_shows_an_offline_device_and_no_summary(
        start_gateway: GatewayFactory, sim: Simulator, tmp_path: Path) -> None:
    base = gateway_config(sim, tmp_path / "data")
    dev = base.sites[0].devices[0]
    unreachable = DeviceConfig.model_validate({**dev.model_dump(), "options": {
        **dev.options.model_dump(), "port": _closed_port()}})  # nothing listens there
    site = base.sites[0].model_copy(update={"devices": [unreachable]})
    config = base.model_copy(update={"sites": [site]})
    async with start_gateway(config, wait_online=False) as gateway:
        [line] = cli.site_lines(gateway.app)
    assert line.energy_site_id == SITE_ID
    assert line.devices[0].state.startswith("offline (")
    assert line.summary == ""
