"""`token revoke` reaches a running gateway within seconds, without a restart, and survives one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from gateway import cli
from tests.helpers import SECRET, SITE_ID, eventually
from tests.integration.conftest import GatewayFactory


def _cli_config(tmp_path: Path, data_dir: Path) -> Path:
    """A config file for the CLI that shares the running gateway's secret and data_dir."""
    path = tmp_path / "cli.yaml"
    path.write_text(f"""\
gateway:
  data_dir: {data_dir}
  jwt_secret: {SECRET}
sites:
  - energy_site_id: {SITE_ID}
    name: Test Home
    time_zone: Europe/Berlin
    devices:
      - {{name: inverter, type: sunspec, options: {{host: 127.0.0.1, port: 1502}}}}
""")
    return path


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI as a user would beside the gateway (in a thread: it does blocking I/O)."""
    assert await asyncio.to_thread(cli.main, list(argv)) == 0
    return capsys.readouterr().out


async def test_revoked_token_is_refused_within_seconds_and_after_a_restart(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _cli_config(tmp_path, tmp_path / "data")  # the start_gateway fixture's data_dir
    issue = ("token", "issue", "--config", str(config), "--scopes", "energy_device_data")
    doomed = (await _cli(capsys, *issue, "--sub", "doomed")).strip()
    kept = (await _cli(capsys, *issue, "--sub", "kept")).strip()
    listing = (await _cli(capsys, "token", "list", "--config", str(config))).splitlines()
    jti = next(line.split()[0] for line in listing if " doomed " in line)

    async def status(token: str, url: str) -> int:
        async with http.get(f"{url}/api/1/energy_sites/{SITE_ID}/live_status",
                            headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status

    async with start_gateway() as gateway:
        assert await status(doomed, gateway.url) == 200
        await _cli(capsys, "token", "revoke", "--config", str(config), jti)
        # refreshed every 2 s: 10 s is generous on a shared machine, and far short of a restart
        await eventually(lambda: status(doomed, gateway.url), lambda s: s == 401, timeout=10)
        async with http.get(f"{gateway.url}/api/1/energy_sites/{SITE_ID}/live_status",
                            headers={"Authorization": f"Bearer {doomed}"}) as response:
            body = await response.json()
        assert body == {"response": None, "error": "invalid bearer token",
                        "error_description": "the access token has been revoked"}
        assert await status(kept, gateway.url) == 200
    async with start_gateway() as gateway:  # the deny-list is loaded before the first request
        assert await status(doomed, gateway.url) == 401
        assert await status(kept, gateway.url) == 200
