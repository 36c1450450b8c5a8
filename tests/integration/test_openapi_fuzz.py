"""Schemathesis against /openapi.json: no 5xx, and every response conforms to the document.

The gateway and the simulator run on their own event loop in a thread, because schemathesis
drives the API with a synchronous client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.schemas import APIOperation

from gateway.core.config import Plan
from gateway.web.app import create_app
from gateway.web.keys import SITES
from gateway.web.openapi import build_openapi
from simulator import Simulator
from simulator.config import ControlConfig, HomeConfig, SimDeviceConfig, SimulatorConfig
from tests.helpers import SITE_ID, gateway_config, token


def _fuzz_document() -> dict[str, object]:
    """The served document, with site ids narrowed to the one site that exists."""
    document = build_openapi()
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "site_id":
                    parameter["schema"] = {"type": "integer", "enum": [SITE_ID]}
    return document


schema = schemathesis.openapi.from_dict(_fuzz_document())


class _Served:
    """Simulator + gateway on a private loop in a daemon thread."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self._stop: asyncio.Event | None = None
        self.cases = 0  # how many generated requests were sent (printed with -s)
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),),
                                        daemon=True, name="fuzz-gateway")

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        config = SimulatorConfig(control=ControlConfig(port=0), tick_s=0.05, homes=[HomeConfig(
            id="home-1001", devices=[SimDeviceConfig(id="inverter", kind="sunspec", port=0)])])
        async with Simulator(config) as sim:
            gw_config = gateway_config(sim, self.data_dir, plans={
                "standard": Plan(per_minute=1_000_000, per_day=10_000_000)})
            app = create_app(gw_config)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            while app[SITES][SITE_ID].offline():  # noqa: ASYNC110 - readiness poll
                await asyncio.sleep(0.02)
            self.url = f"http://{host}:{port}"
            self.ready.set()
            await self._stop.wait()
            await runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(timeout=20):
            raise RuntimeError("gateway did not start")

    def stop(self) -> None:
        stop = self._stop
        if stop is not None:
            self.loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=20)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    running = _Served(tmp_path_factory.mktemp("fuzz") / "data")
    running.start()
    yield running
    running.stop()
    print(f"\nschemathesis: {running.cases} generated requests, every response validated")


@pytest.fixture(autouse=True)
def no_leaked_tasks() -> None:
    """The async leak guard does not apply: these tests are synchronous."""


@schema.auth()
class _Bearer:
    """A valid token for every generated request (negative cases drop or break it themselves)."""

    def get(self, case: Case[APIOperation[Any, Any, Any, Any]], context: object) -> str:
        return token()

    def set(self, case: Case[APIOperation[Any, Any, Any, Any]], data: str, context: object) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_conforms(case: Case[APIOperation[Any, Any, Any, Any]], served: _Served) -> None:
    # Cross-field rules (end_date after start_date, a tariff's seasons covering the year) cannot
    # be said in JSON Schema: there a schema-valid request is rightly refused with a 400. History
    # dates are parsed leniently on purpose (empty = absent, bare dates), as clients send them.
    excluded = []
    if case.operation.path.endswith(("_history", "/time_of_use_settings")):
        excluded.append(positive_data_acceptance)
    if case.operation.path.endswith("_history"):
        excluded.append(negative_data_rejection)
    served.cases += 1
    case.call_and_validate(base_url=served.url, excluded_checks=excluded)
