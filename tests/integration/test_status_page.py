"""The status page at /ui in headless Chromium (Debian's chromium and chromium-driver, Selenium).

The demo's three simulated sites behind a real gateway: the page asks for the token once, shows
each site's flows as the API serves them, follows a change within a poll, shows a faulted
device as offline, and fits a phone's width. ``ENERGY_GATEWAY_SCREENSHOT=docs/status-page.png``
saves the screenshot of the docs.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.core.config import parse
from gateway.web.app import create_app
from gateway.web.server import GatewayRunner
from simulator import Simulator
from simulator.config import SimulatorConfig
from tests.helpers import SECRET, eventually, free_ports, token

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SITES = (1001, 1002, 1003)
FLOWS = {"solar": "solar_power", "battery": "battery_power", "grid": "grid_power",
         "load": "load_power"}

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")




class Demo:
    """The demo's gateway and simulator, running in this test's loop."""

    def __init__(self, url: str, sim: Simulator) -> None:
        self.url = url
        self.sim = sim


@pytest_asyncio.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    text = (ROOT / "config.example.yaml").read_text()
    control, inverter, pv, broker, ocpp = free_ports(5)
    for old, new in (("15000", str(control)), ("15020", str(inverter)),
                     ("15030", str(pv)), ("18830", str(broker)), ("9000", str(ocpp)),
                     ("data_dir: data", f"data_dir: {tmp_path / 'data'}"),
                     # the fault below shows within 1.5 s rather than the demo's 5 s
                     ("simulated: home-1001/inverter",
                      "simulated: home-1001/inverter\n        stale_after_s: 1.5")):
        assert old in text
        text = text.replace(old, new)
    loaded = parse(text)
    sim_config = loaded.section("simulator", SimulatorConfig)
    assert sim_config is not None
    async with Simulator(sim_config) as sim:
        runner = GatewayRunner(create_app(loaded.config, jwt_secret=SECRET), access_log=None)
        await runner.setup()
        try:
            tcp = web.TCPSite(runner, "127.0.0.1", 0)
            await tcp.start()
            host, port = runner.addresses[0][:2]
            yield Demo(f"http://{host}:{port}", sim)
        finally:
            await runner.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver: nothing is downloaded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def page_flows(driver: Any) -> dict[int, dict[str, str]]:
    """Each site section's raw flow values as the page holds them (data-value attributes)."""
    values: dict[int, dict[str, str]] = driver.execute_script("""
        const out = {};
        for (const s of document.querySelectorAll('section.site')) {
          const v = {};
          for (const n of s.querySelectorAll('[data-flow]')) v[n.dataset.flow] = n.dataset.value;
          out[s.dataset.site] = v;
        }
        return out;""")
    return {int(k): v for k, v in values.items()}


def device_quality(driver: Any, site: int, device: str) -> str | None:
    quality: str | None = driver.execute_script(
        "const r = document.querySelector(`section.site[data-site='${arguments[0]}'] "
        "tr[data-device='${arguments[1]}']`); return r ? r.dataset.quality : null;",
        site, device)
    return quality


async def live(http: aiohttp.ClientSession, demo: Demo, site: int) -> dict[str, Any]:
    async with http.get(f"{demo.url}/api/1/energy_sites/{site}/live_status",
                        headers={"Authorization": f"Bearer {token()}"}) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        response: dict[str, Any] = body["response"]
        return response


def matches(flows: dict[str, str], api: dict[str, Any]) -> bool:
    return all(flows.get(flow) == str(api[key]) for flow, key in FLOWS.items()) and \
        float(flows.get("soc") or "nan") == api["percentage_charged"]


async def test_status_page_shows_every_demo_site_as_the_api_does(
    demo: Demo, browser: Any, tmp_path: Path,
) -> None:
    run = asyncio.to_thread
    async with aiohttp.ClientSession() as http:
        for site in SITES:  # every device of the demo answers before the page is asked
            await eventually(functools.partial(live_ok, http, demo, site), timeout=20)
        # Freeze simulated time: the flows stand still, so page and API must agree exactly.
        async with http.post(f"{demo.sim.control_url}/clock", json={"speed": 0}) as resp:
            assert resp.status == 200

        await run(browser.get, f"{demo.url}/ui")
        await run(browser.execute_script, "localStorage.clear(); sessionStorage.clear();")
        await run(browser.refresh)
        from selenium.webdriver.common.by import By

        field = await run(browser.find_element, By.ID, "token")
        await run(field.send_keys, token(scopes=("energy_device_data",)))
        await run(field.submit)

        async def agree() -> bool:
            shown = await run(page_flows, browser)
            for site in SITES:
                if site not in shown or not matches(shown[site], await live(http, demo, site)):
                    return False
            return True

        await eventually(agree, timeout=15, interval=0.3)

        # The token was asked once: a reload shows the sites without asking again.
        await run(browser.refresh)
        await eventually(lambda: run(page_flows, browser), lambda s: set(s) == set(SITES),
                         timeout=10, interval=0.3)
        assert not await run(browser.execute_script,
                             "return !document.getElementById('login').hidden")

        # A change in the home shows up within a poll of the page (2 s) after the API has it.
        async with http.post(f"{demo.sim.control_url}/homes/home-1001/load",
                             json={"scale": 2.0}) as resp:
            assert resp.status == 200
        before = (await live(http, demo, 1001))["load_power"]
        changed = await eventually(lambda: live(http, demo, 1001),
                                   lambda r: r["load_power"] != before, timeout=10)
        await eventually(lambda: run(page_flows, browser),
                         lambda s: s[1001]["load"] == str(changed["load_power"]), timeout=5,
                         interval=0.2)

        # The journal shows a command and its outcome.
        async with http.post(f"{demo.url}/api/1/energy_sites/1001/backup",
                             json={"backup_reserve_percent": 30},
                             headers={"Authorization": f"Bearer {token()}"}) as resp:
            assert resp.status == 200
        await eventually(lambda: run(browser.execute_script, (
            "return [...document.querySelectorAll(\"section.site[data-site='1001'] "
            ".journal tr[data-status]\")].map(r => r.dataset.status)")),
            lambda statuses: statuses == ["confirmed"], timeout=5, interval=0.2)
        assert await run(browser.execute_script, (
            "return document.querySelector(\"section.site[data-site='1002'] .node.car\").hidden"))

        shot = os.environ.get("ENERGY_GATEWAY_SCREENSHOT")
        await run(browser.save_screenshot, shot or str(tmp_path / "status-page.png"))

        # A device that stops answering shows as offline, and its site says why.
        control = f"{demo.sim.control_url}/homes/home-1001/devices/inverter"
        async with http.post(f"{control}/faults", json={"refuse_connections": True}) as resp:
            assert resp.status == 200
        async with http.post(f"{control}/drop") as resp:
            assert resp.status == 200
        await eventually(lambda: run(device_quality, browser, 1001, "inverter"),
                         lambda q: q == "offline", timeout=20, interval=0.3)
        offline_text = await run(browser.execute_script, (
            "return document.querySelector(\"section.site[data-site='1001'] .site-offline\")"
            ".textContent"))
        assert "inverter" in offline_text
        assert await run(device_quality, browser, 1002, "gx") == "fresh"

        # Readable on a phone: nothing wider than the screen.
        await run(browser.set_window_size, 390, 844)
        overflow = await run(browser.execute_script,
                             "return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0


async def live_ok(http: aiohttp.ClientSession, demo: Demo, site: int) -> bool:
    async with http.get(f"{demo.url}/api/1/energy_sites/{site}/live_status",
                        headers={"Authorization": f"Bearer {token()}"}) as resp:
        return resp.status == 200


async def test_the_page_holds_no_data_and_forbids_inline_script(
    demo: Demo, http: aiohttp.ClientSession,
) -> None:
    async with http.get(f"{demo.url}/ui/") as resp:
        assert resp.status == 200
    async with http.get(f"{demo.url}/ui") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        html = await resp.text()
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "Sunny Home" not in html  # the data comes from the API, with the token
    for path, ctype in (("/ui/status.js", "text/javascript"), ("/ui/status.css", "text/css")):
        async with http.get(f"{demo.url}{path}") as resp:
            assert resp.status == 200
            assert resp.content_type == ctype
    async with http.get(f"{demo.url}/api/1/energy_sites/1001/gateway_status") as resp:
        assert resp.status == 401
