"""Sandbox sites and test tokens over HTTP: a test token reaches only sandbox sites, a live one
never does, and every answer to a test token says it is the sandbox (docs/api.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from gateway import cli
from gateway.core.config import Config, ConfigError, parse_config
from gateway.web.app import SANDBOX_HEADER, create_app
from gateway.web.server import GatewayRunner
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig
from tests.helpers import SECRET, eventually, free_ports

LIVE_SITE, SANDBOX_SITE = 1001, 2001


def sandbox_config(sim: Simulator, data_dir: Path) -> Config:
    """One ordinary site and one sandbox site, each on a simulated inverter."""
    def device(ref: str) -> dict[str, Any]:
        endpoint = sim.endpoint(ref)
        return {"name": "inverter", "type": "sunspec", "poll_interval_s": 0.1,
                "simulated": ref,
                "options": {"host": endpoint.host, "port": endpoint.port,
                            "unit_id": endpoint.unit_id, "timeout_s": 0.5}}

    return Config.model_validate({
        "gateway": {"port": 0, "data_dir": str(data_dir), "jwt_secret": SECRET,
                    "reconcile_interval_s": 0.5},
        "sites": [
            {"energy_site_id": LIVE_SITE, "name": "Real Home", "time_zone": "Europe/Berlin",
             "devices": [device("home-live/inverter")]},
            {"energy_site_id": SANDBOX_SITE, "name": "Sandbox Home", "time_zone": "Europe/Berlin",
             "sandbox": True, "devices": [device("home-sandbox/inverter")]},
        ]})


@pytest_asyncio.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Simulator]]:
    homes = [HomeConfig(id=f"home-{kind}", initial_soc_pct=60, devices=[
        SimDeviceConfig(id="inverter", kind="sunspec", port=0)]) for kind in ("live", "sandbox")]
    async with Simulator(SimulatorConfig(control=ControlConfig(port=0), tick_s=0.05,
                                         homes=homes)) as sim:
        app = create_app(sandbox_config(sim, tmp_path / "data"))
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            yield f"http://{host}:{port}", sim
        finally:
            await runner.cleanup()


def bearer(env: str = "live", sites: list[int] | None = None) -> dict[str, str]:
    from gateway.web.auth import COMMAND_SCOPE, READ_SCOPE, issue_token

    return {"Authorization": "Bearer " + issue_token(
        SECRET, sub="t", scopes=(READ_SCOPE, COMMAND_SCOPE), sites=sites, ttl_s=600,
        now_s=time.time(), env=env)}


async def test_test_tokens_reach_sandbox_sites_only_and_are_told_so(
    served: tuple[str, Simulator], http: aiohttp.ClientSession,
) -> None:
    url, sim = served
    test, live = bearer("test"), bearer("live")

    async with http.get(f"{url}/api/1/products", headers=test) as resp:
        assert resp.headers[SANDBOX_HEADER] == "true"
        assert [p["energy_site_id"] for p in (await resp.json())["response"]] == [SANDBOX_SITE]
    async with http.get(f"{url}/api/1/products", headers=live) as resp:
        assert SANDBOX_HEADER not in resp.headers
        assert [p["energy_site_id"] for p in (await resp.json())["response"]] == [LIVE_SITE]

    async def status(site: int, headers: dict[str, str]) -> int:
        async with http.get(f"{url}/api/1/energy_sites/{site}/live_status", headers=headers) as r:
            return r.status

    await eventually(lambda: status(SANDBOX_SITE, test), lambda s: s == 200)
    await eventually(lambda: status(LIVE_SITE, live), lambda s: s == 200)
    # each token's other world does not exist for it: the same 404 as an unknown site
    for site, headers in ((LIVE_SITE, test), (SANDBOX_SITE, live),
                          (LIVE_SITE, bearer("test", sites=[LIVE_SITE]))):
        async with http.get(f"{url}/api/1/energy_sites/{site}/site_info", headers=headers) as r:
            assert r.status == 404
            assert (await r.json())["error_description"] == f"energy site {site} not found"
        async with http.post(f"{url}/api/1/energy_sites/{site}/backup", headers=headers,
                             json={"backup_reserve_percent": 77}) as r:
            assert r.status == 404

    # a test token commands the sandbox: the simulated device takes it, the real one does not
    async with http.post(f"{url}/api/1/energy_sites/{SANDBOX_SITE}/backup", headers=test,
                         json={"backup_reserve_percent": 77}) as resp:
        assert resp.status == 200
        assert resp.headers[SANDBOX_HEADER] == "true"
    assert sim.homes["home-sandbox"].truth().reserve_pct == 77
    assert sim.homes["home-live"].truth().reserve_pct != 77

    # errors to a test token say so too
    async with http.get(f"{url}/api/1/energy_sites/{SANDBOX_SITE}/calendar_history",
                        headers=test) as resp:
        assert resp.status == 400
        assert resp.headers[SANDBOX_HEADER] == "true"


def test_a_sandbox_site_must_be_simulated() -> None:
    with pytest.raises(ConfigError, match="sandbox site is served by the built-in simulator"):
        parse_config("""
gateway: {jwt_secret: integration-test-secret-0123456789}
sites:
  - energy_site_id: 2001
    name: Sandbox
    time_zone: Europe/Berlin
    sandbox: true
    devices:
      - {name: inverter, type: sunspec, options: {host: 127.0.0.1, port: 1502}}
""")


# ---- `serve` with a sandbox beside a real site, tokens from `token issue` ---------------------




SERVE_CONFIG = """
gateway:
  port: {gateway}
  data_dir: {data}
sites:
  - energy_site_id: 1001
    name: Real Home
    time_zone: Europe/Berlin
    devices:
      - {{name: inverter, type: sunspec, options: {{host: 127.0.0.1, port: {real}}}}}
  - energy_site_id: 2001
    name: Sandbox Home
    time_zone: Europe/Berlin
    sandbox: true
    devices:
      - name: inverter
        type: sunspec
        poll_interval_s: 0.2
        simulated: home-sandbox/inverter
        options: {{host: 127.0.0.1, port: {sim_device}, unit_id: 1}}
simulator:
  control: {{host: 127.0.0.1, port: {control}}}
  homes:
    - id: home-sandbox
      devices: [{{id: inverter, kind: sunspec, host: 127.0.0.1, port: {sim_device}, unit_id: 1}}]
    - id: home-unused          # not named by a sandbox site: serve does not run it
      devices: [{{id: inverter, kind: sunspec, host: 127.0.0.1, port: {unused}, unit_id: 1}}]
"""


def _get(url: str, token_text: str) -> tuple[int, dict[str, str], Any]:
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(  # noqa: S310 - loopback http, checked above
        url, headers={"Authorization": f"Bearer {token_text}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
            return answer.status, dict(answer.headers), json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.load(exc)


def test_serve_runs_the_sandbox_beside_the_real_site(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway, real, sim_device, control, unused = free_ports(5)
    path = tmp_path / "config.yaml"
    path.write_text(SERVE_CONFIG.format(gateway=gateway, data=tmp_path / "data", real=real,
                                        sim_device=sim_device, control=control, unused=unused))
    secret = "serve-sandbox-secret-" + "x" * 40
    monkeypatch.setenv("ENERGY_GATEWAY_JWT_SECRET", secret)

    def issue(*extra: str) -> tuple[int, str, str]:
        code = cli.main(["token", "issue", "--config", str(path), "--scopes",
                         "energy_device_data,energy_cmds", *extra])
        out, err = capsys.readouterr()
        return code, out.strip(), err

    code, test_token, _ = issue("--env", "test")
    assert code == 0
    code, live_token, _ = issue()
    assert code == 0
    code, _, err = issue("--env", "test", "--sites", "1001")
    assert code == 2
    assert "not sandbox sites" in err
    assert cli.main(["token", "list", "--config", str(path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["jti", "sub", "env"]
    assert sorted(line.split()[2] for line in listing[1:]) == ["live", "test"]

    env = {**os.environ, "ENERGY_GATEWAY_JWT_SECRET": secret}
    proc = subprocess.Popen(  # the serve of an installation
        [sys.executable, "-m", "gateway.cli", "--log-format", "json", "serve", "--config",
         str(path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{gateway}/api/1/energy_sites"
        deadline = time.monotonic() + 20
        while True:
            try:
                status, headers, body = _get(f"{url}/2001/live_status", test_token)
            except (urllib.error.URLError, ConnectionError):
                status, headers, body = 0, {}, None
            if status == 200:
                break
            assert time.monotonic() < deadline, f"sandbox site not served: {status} {body}"
            time.sleep(0.1)
        assert headers[SANDBOX_HEADER] == "true"
        assert body["response"]["percentage_charged"] > 0
        status, headers, _ = _get(f"{url}/1001/live_status", live_token)
        assert status == 408  # the real inverter is not there: the real site is offline
        assert SANDBOX_HEADER not in headers
        assert _get(f"{url}/2001/live_status", live_token)[0] == 404
        assert _get(f"{url}/1001/live_status", test_token)[0] == 404
        with socket.socket() as probe:  # a home no sandbox site names is not run
            assert probe.connect_ex(("127.0.0.1", unused)) != 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")


def test_a_test_token_needs_a_sandbox_site(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"gateway: {{data_dir: {tmp_path / 'data'}}}\n" + """
sites:
  - energy_site_id: 1001
    name: Real Home
    time_zone: Europe/Berlin
    devices:
      - {name: inverter, type: sunspec, options: {host: 127.0.0.1, port: 1502}}
""")
    monkeypatch.setenv("ENERGY_GATEWAY_JWT_SECRET", "serve-sandbox-secret-" + "x" * 40)
    assert cli.main(["token", "issue", "--config", str(path), "--scopes", "energy_device_data",
                     "--env", "test"]) == 2
    assert "no site with sandbox: true" in capsys.readouterr().err
