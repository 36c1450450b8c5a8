"""The simulator's control API: read the truth; set weather, load, grid, storm, clock; inject faults."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from simulator.alerts import add_alert_routes
from simulator.charger_control import add_charger_routes
from simulator.clock import SimClock
from simulator.devices.register_twin import RegisterTwin
from simulator.devices.sunspec import SunSpecDevice
from simulator.devices.victron_gx import VictronGxDevice
from simulator.faults import FaultPlanError
from simulator.home import SimDevice, SimHome
from simulator.physics import HomeTruth
from simulator.prices import add_price_routes


class ControlTarget(Protocol):
    """What the control API drives (a Simulator)."""

    @property
    def homes(self) -> Mapping[str, SimHome]:
        """Homes by id."""
        ...

    @property
    def clock(self) -> SimClock:
        """The shared simulated clock."""
        ...


TARGET_KEY = web.AppKey("simulator", ControlTarget)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


_B = TypeVar("_B", bound=_Body)


class _Weather(_Body):
    cloud_factor: float = Field(ge=0, le=1)


class _Load(_Body):
    scale: float = Field(ge=0, le=100)


class _Grid(_Body):
    up: StrictBool


class _Storm(_Body):
    active: StrictBool


class _Clock(_Body):
    speed: float = Field(ge=0, le=100_000)


class _Reboot(_Body):
    wait: StrictBool = True


def truth_json(truth: HomeTruth) -> dict[str, Any]:
    """HomeTruth as a JSON-ready dict (`at` as ISO 8601)."""
    data = dataclasses.asdict(truth)
    data["at"] = truth.at.isoformat()
    return data


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _BadRequestError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _parse(request: web.Request, model: type[_B]) -> _B:
    try:
        raw = await request.json()
    except ValueError as exc:
        raise _BadRequestError(f"body is not JSON: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise _BadRequestError(f"{where}: {first['msg']}") from exc


def _home(request: web.Request) -> SimHome | None:
    return request.app[TARGET_KEY].homes.get(request.match_info["home_id"])


async def _list_homes(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[TARGET_KEY].homes))


async def _truth(request: web.Request) -> web.Response:
    home = _home(request)
    if home is None:
        return _error(404, f"unknown home {request.match_info['home_id']!r}")
    return web.json_response(truth_json(home.truth()))


async def _set_home(request: web.Request) -> web.Response:
    home = _home(request)
    if home is None:
        return _error(404, f"unknown home {request.match_info['home_id']!r}")
    what = request.match_info["what"]
    try:
        if what == "weather":
            home.set_cloud_factor((await _parse(request, _Weather)).cloud_factor)
        elif what == "load":
            home.set_load_scale((await _parse(request, _Load)).scale)
        elif what == "grid":
            home.set_grid_up((await _parse(request, _Grid)).up)
        else:
            home.set_storm_alert((await _parse(request, _Storm)).active)
    except _BadRequestError as exc:
        return _error(400, exc.message)
    return web.json_response(truth_json(home.truth()))


#: Devices with a Modbus TCP face that plays a FaultPlan.
_FAULTY: tuple[type[SunSpecDevice | VictronGxDevice | RegisterTwin], ...] = (
    SunSpecDevice, VictronGxDevice, RegisterTwin,
)  # fmt: skip
#: Devices that play a reboot (factory settings restored, port closed for a while).
_REBOOTING: tuple[type[SunSpecDevice | RegisterTwin], ...] = (SunSpecDevice, RegisterTwin)


def _device(request: web.Request) -> SimDevice | web.Response:
    home = _home(request)
    if home is None:
        return _error(404, f"unknown home {request.match_info['home_id']!r}")
    device = home.devices.get(request.match_info["device_id"])
    if device is None:
        return _error(404, f"unknown device {request.match_info['device_id']!r}")
    return device


_D = TypeVar("_D")


def _unsupported(device: SimDevice, what: str) -> web.Response:
    return _error(409, f"device {device.id!r} ({device.kind}) does not support {what}")


def _device_for(
    request: web.Request, kinds: type[_D] | tuple[type[_D], ...], what: str
) -> _D | web.Response:
    """The path's device when it is one of ``kinds``, else the 404/409 answer to return."""
    device = _device(request)
    if isinstance(device, web.Response):
        return device
    if not isinstance(device, kinds):
        return _unsupported(device, what)
    return device


async def _list_devices(request: web.Request) -> web.Response:
    home = _home(request)
    if home is None:
        return _error(404, f"unknown home {request.match_info['home_id']!r}")
    return web.json_response([
        {"id": d.id, "kind": d.kind, "host": d.host, "port": d.port, "unit_id": d.unit_id}
        for d in home.devices.values()
    ])


async def _get_faults(request: web.Request) -> web.Response:
    device = _device_for(request, _FAULTY, "a fault plan")
    if isinstance(device, web.Response):
        return device
    return web.json_response(device.faults.to_json())


async def _set_faults(request: web.Request) -> web.Response:
    device = _device_for(request, _FAULTY, "a fault plan")
    if isinstance(device, web.Response):
        return device
    try:
        raw = await request.json()
    except ValueError as exc:
        return _error(400, f"body is not JSON: {exc}")
    if not isinstance(raw, dict):
        return _error(400, "body: must be a JSON object of fault fields")
    try:
        plan = await device.apply_faults(**raw)
    except FaultPlanError as exc:
        return _error(400, str(exc))
    return web.json_response(plan.to_json())


async def _stats(request: web.Request) -> web.Response:
    device = _device_for(request, _FAULTY, "connection stats")
    if isinstance(device, web.Response):
        return device
    return web.json_response(device.stats.to_json())


async def _reboot(request: web.Request) -> web.Response:
    device = _device_for(request, _REBOOTING, "reboot")
    if isinstance(device, web.Response):
        return device
    try:
        body = await _parse(request, _Reboot) if request.can_read_body else _Reboot()
    except _BadRequestError as exc:
        return _error(400, exc.message)
    await device.reboot(wait=body.wait)
    return web.json_response({"reboots": device.stats.reboots, "listening": device.listening})


async def _drop(request: web.Request) -> web.Response:
    device = _device_for(request, _FAULTY, "dropping connections")
    if isinstance(device, web.Response):
        return device
    return web.json_response({"dropped": await device.drop_connections()})


async def _broker_restart(request: web.Request) -> web.Response:
    device = _device_for(request, VictronGxDevice, "broker_restart (restart an external broker instead)")
    if isinstance(device, web.Response):
        return device
    await device.broker_restart()
    return web.json_response({"broker_restarts": device.broker_restarts})


def _clock_json(clock: SimClock) -> dict[str, Any]:
    return {"now": clock.now().isoformat(), "speed": clock.speed}


async def _get_clock(request: web.Request) -> web.Response:
    return web.json_response(_clock_json(request.app[TARGET_KEY].clock))


async def _set_clock(request: web.Request) -> web.Response:
    try:
        body = await _parse(request, _Clock)
    except _BadRequestError as exc:
        return _error(400, exc.message)
    clock = request.app[TARGET_KEY].clock
    clock.set_speed(body.speed)
    return web.json_response(_clock_json(clock))


def create_control_app(target: ControlTarget) -> web.Application:
    """Build the control API application for a simulator.

    Routes: GET /homes, GET /homes/{id}/truth, POST /homes/{id}/weather|load|grid|storm,
    GET|POST /clock; faults (docs/simulator.md): GET /homes/{id}/devices,
    GET|POST /homes/{id}/devices/{dev}/faults, GET .../stats, POST .../reboot, POST .../drop,
    POST .../broker_restart; weather alerts (docs/simulator.md, "Weather alerts"):
    POST|GET|DELETE /homes/{id}/alerts, GET /alerts/active?point=LAT,LON, POST /alerts/feed.
    Errors answer {"error": "..."} with 400 (bad body), 404 (unknown
    home or device) or 409 (the device kind does not support that fault).
    """
    app = web.Application()
    app[TARGET_KEY] = target
    app.router.add_get("/homes", _list_homes)
    app.router.add_get("/homes/{home_id}/truth", _truth)
    app.router.add_post("/homes/{home_id}/{what:weather|load|grid|storm}", _set_home)
    dev = "/homes/{home_id}/devices/{device_id}"
    app.router.add_get("/homes/{home_id}/devices", _list_devices)
    app.router.add_get(f"{dev}/faults", _get_faults)
    app.router.add_post(f"{dev}/faults", _set_faults)
    app.router.add_get(f"{dev}/stats", _stats)
    app.router.add_post(f"{dev}/reboot", _reboot)
    app.router.add_post(f"{dev}/drop", _drop)
    app.router.add_post(f"{dev}/broker_restart", _broker_restart)
    app.router.add_get("/clock", _get_clock)
    app.router.add_post("/clock", _set_clock)
    add_charger_routes(app, lambda request: request.app[TARGET_KEY].homes)
    add_price_routes(app, lambda: target.clock.now())  # noqa: PLW0108 - looked up per request
    add_alert_routes(app, target)  # weather alerts and their NWS-compatible feed
    return app
