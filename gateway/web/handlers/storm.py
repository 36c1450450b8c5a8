"""Storm watch endpoints (not Fleet): read the alerts, and raise or clear one by hand (storm_admin)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Final

import annotated_types
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, StrictInt, StringConstraints

from gateway.core.storm import StormAlert
from gateway.runtime.site import Site
from gateway.web.auth import READ_SCOPE, STORM_ADMIN_SCOPE
from gateway.web.errors import InvalidField, ok
from gateway.web.handlers.commands import read_json, validate
from gateway.web.keys import CLOCK, principal, site_for
from gateway.web.renderers.models import StormStatusResponse
from gateway.web.renderers.storm import storm_status

routes = web.RouteTableDef()

PATH: Final = r"/api/1/energy_sites/{site_id:\d+}/storm_alert"
SOURCE: Final = "admin"
DEFAULT_DURATION_S: Final = 86_400
EPISODES_SHOWN: Final = 20  # the last storm-mode episodes in each answer
MAX_DURATION_S: Final = 7 * 86_400


class RaiseStormAlertBody(BaseModel):
    """``POST .../storm_alert``: every key optional; ``ends`` wins over ``duration_s``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=100)] = "Storm alert (admin)"
    duration_s: Annotated[StrictInt, annotated_types.Ge(60),
                          annotated_types.Le(MAX_DURATION_S)] = DEFAULT_DURATION_S
    ends: AwareDatetime | None = None
    headline: Annotated[str, StringConstraints(max_length=200)] = ""


@routes.get(PATH)
async def get_storm_alert(request: web.Request) -> web.Response:
    """The site's active alerts, since when storm mode acts, and every source's state."""
    who = principal(request)
    scope = STORM_ADMIN_SCOPE if STORM_ADMIN_SCOPE in who.scopes else READ_SCOPE
    site = site_for(request, scope)
    return await _status(site, request.app[CLOCK]())


@routes.post(PATH)
async def raise_storm_alert(request: web.Request) -> web.Response:
    """Raise the admin alert (replacing an earlier one) until ``ends`` or for ``duration_s``."""
    site = site_for(request, STORM_ADMIN_SCOPE)
    body = validate(RaiseStormAlertBody, await read_json(request))
    now: datetime = request.app[CLOCK]()
    ends = body.ends or now + timedelta(seconds=body.duration_s)
    if not now < ends <= now + timedelta(seconds=MAX_DURATION_S):
        raise InvalidField(f"ends: must be in the future and at most {MAX_DURATION_S // 86_400} "
                           "days away")
    alert = StormAlert(event=body.event, source=SOURCE, onset=now, ends=ends,
                       id=f"admin:{principal(request).sub}"[:200], headline=body.headline)
    await site.storm.update(SOURCE, (alert,))
    await site.storm.check(site.settings.storm_mode_enabled)  # logged and recorded before the answer
    return await _status(site, now)


@routes.delete(PATH)
async def clear_storm_alert(request: web.Request) -> web.Response:
    """Clear the admin alert (alerts of other sources stay)."""
    site = site_for(request, STORM_ADMIN_SCOPE)
    await site.storm.update(SOURCE, ())
    await site.storm.check(site.settings.storm_mode_enabled)
    return await _status(site, request.app[CLOCK]())


async def _status(site: Site, now: datetime) -> web.Response:
    episodes = await site.storm.recent_episodes(EPISODES_SHOWN)
    return ok(StormStatusResponse.model_construct(response=storm_status(site, now, episodes)))
