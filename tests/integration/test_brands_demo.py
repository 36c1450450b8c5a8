"""config.brands.yaml: every site of the brands demo comes up on its twin and takes a command."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from gateway.core.config import parse_config
from gateway.web.app import create_app
from gateway.web.server import GatewayRunner
from simulator import Simulator, load_simulator_config
from tests.helpers import SECRET, eventually, free_ports, token

ROOT = Path(__file__).resolve().parents[2]
#: Sites whose devices honour no backup reserve (the SMA home: a PV inverter and an SBS).
RESERVE_LESS = {2004}




def brands_text(tmp_path: Path) -> str:
    """config.brands.yaml on free ports, a temporary data dir, the test secret and fast twins."""
    text = (ROOT / "config.brands.yaml").read_text(encoding="utf-8")
    control, sungrow, huawei, solaredge, sma_pv, sma = free_ports(6)
    for old, new in (("port: 8080", "port: 0"), ("port: 15100", f"port: {control}"),
                     ("15121", str(sungrow)), ("15122", str(huawei)), ("15123", str(solaredge)),
                     ("15124", str(sma_pv)), ("15125", str(sma)),
                     ("data_dir: data-brands", f"data_dir: {tmp_path / 'data'}"),
                     ("demo-only-secret-change-me-0123456789", SECRET),
                     ("settle_s: 1.0", "settle_s: 0.05"), ("answer_delay_s: 0.03", "answer_delay_s: 0.002")):
        assert old in text, old
        text = text.replace(old, new)
    return text


async def test_every_brand_site_comes_up_and_takes_a_command(tmp_path: Path) -> None:
    text = brands_text(tmp_path)
    config = parse_config(text, "config.brands.yaml")
    sim_config = load_simulator_config(yaml.safe_load(text)["simulator"])
    site_ids = [s.energy_site_id for s in config.sites]
    async with Simulator(sim_config) as sim:
        app = create_app(config)
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        try:
            host, port = runner.addresses[0][:2]
            headers = {"Authorization": f"Bearer {token()}"}
            async with aiohttp.ClientSession(base_url=f"http://{host}:{port}", headers=headers) as http:
                for site_id, home in zip(site_ids, sim.homes.values(), strict=True):

                    async def live(site_id: int = site_id) -> int:
                        async with http.get(f"/api/1/energy_sites/{site_id}/live_status") as resp:
                            return resp.status

                    await eventually(live, lambda status: status == 200, timeout=15)
                    if site_id in RESERVE_LESS:  # a battery inverter without a reserve control
                        async with http.post(f"/api/1/energy_sites/{site_id}/grid_import_export",
                                             json={"customer_preferred_export_rule": "never"}) as resp:
                            assert resp.status == 200, await resp.text()
                        assert home.truth().export_limit_w == 0
                        continue
                    async with http.post(f"/api/1/energy_sites/{site_id}/backup",
                                         json={"backup_reserve_percent": 42}) as resp:
                        assert resp.status == 200, await resp.text()
                    assert home.truth().reserve_pct == 42
        finally:
            await runner.cleanup()
