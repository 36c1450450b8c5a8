"""The control API of simulated chargers: plug a car in or out, authorise, set the car, faults."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from simulator.devices.ocpp_charger import OcppChargerDevice
from simulator.home import SimHome


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Plug(_Body):
    plugged: StrictBool


class _Authorize(_Body):
    id_tag: str = Field(min_length=1, max_length=20)  # OCPP 1.6 IdToken: CiString20


class _Car(_Body):
    soc_pct: float | None = Field(None, ge=0, le=100)
    battery_wh: float | None = Field(None, gt=0, le=250000)


class _Faults(_Body):
    offline: StrictBool | None = None
    clock_skew_s: float | None = Field(None, ge=-86400 * 365, le=86400 * 365)
    meter_gap: StrictBool | None = None


def charger_json(device: OcppChargerDevice) -> dict[str, Any]:
    """A charger's truth: connector, meter, car, link and faults."""
    return {**device.charger.truth(), "id": device.id,
            "charge_point_id": device.config.charge_point_id, "connected": device.connected,
            "boots": device.boots, "offline": device.offline, "meter_gap": device.meter_gap,
            "errors_received": len(device.errors_received)}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def add_charger_routes(app: web.Application, homes: Any) -> None:
    """Routes under ``/homes/{home_id}/chargers/{device_id}``: GET (truth), POST ``plug``,
    ``authorize``, ``car``, ``faults``; ``homes`` answers the app with its homes by id."""

    def device(request: web.Request) -> OcppChargerDevice | web.Response:
        home: SimHome | None = homes(request).get(request.match_info["home_id"])
        if home is None:
            return _error(404, f"unknown home {request.match_info['home_id']!r}")
        found = home.devices.get(request.match_info["device_id"])
        if not isinstance(found, OcppChargerDevice):
            return _error(404, f"no charger {request.match_info['device_id']!r}")
        return found

    async def get(request: web.Request) -> web.Response:
        found = device(request)
        return found if isinstance(found, web.Response) else web.json_response(charger_json(found))

    async def post(request: web.Request) -> web.Response:
        found = device(request)
        if isinstance(found, web.Response):
            return found
        what = request.match_info["what"]
        models: dict[str, type[_Body]] = {"plug": _Plug, "authorize": _Authorize, "car": _Car,
                                          "faults": _Faults}
        model = models[what]
        try:
            body: Any = model.model_validate(await request.json())
        except ValueError as exc:  # not JSON, or not what the route takes
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "body"
                return _error(400, f"{where}: {first['msg']}")
            return _error(400, f"body is not JSON: {exc}")
        charger = found.charger
        if isinstance(body, _Plug):
            charger.plug(body.plugged)
        elif isinstance(body, _Authorize):
            charger.authorize(body.id_tag)
        elif isinstance(body, _Car):
            if body.soc_pct is not None:
                charger.car_soc_pct = body.soc_pct
            if body.battery_wh is not None:
                charger.car_battery_wh = body.battery_wh
            charger.settle()
        else:
            if body.clock_skew_s is not None:
                charger.clock_skew_s = body.clock_skew_s
            if body.meter_gap is not None:
                found.meter_gap = body.meter_gap
            if body.offline is not None:
                found.set_offline(body.offline)
        found.changed()
        return web.json_response(charger_json(found))

    base = "/homes/{home_id}/chargers/{device_id}"
    app.router.add_get(base, get)
    app.router.add_post(base + "/{what:plug|authorize|car|faults}", post)
