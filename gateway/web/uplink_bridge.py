"""The uplink's view of the HTTP edge: the Fleet bodies and command answers a local client gets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import structlog

from drivers.errors import DriverError
from gateway.core.errors import GatewayError, SiteOffline, clip
from gateway.runtime.site import Site
from gateway.web.errors import DESCRIPTION_MAX_CHARS, FleetError, NotFound, to_fleet, to_json
from gateway.web.handlers.commands import COMMANDS, Command, validate
from gateway.web.renderers.sites import live_status_body, products_entry, site_info_body

log = structlog.get_logger("gateway.web.uplink_bridge")
_BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}


def error_body(exc: FleetError) -> tuple[int, dict[str, Any]]:
    """A Fleet error as (status, body), exactly as ``error_response`` renders it."""
    return exc.status, {"response": None, "error": exc.error,
                        "error_description": clip(exc.description, DESCRIPTION_MAX_CHARS)}


class WebBridge:
    """Implements ``runtime.uplink.UplinkBridge`` with the web floor's renderers and commands."""

    def __init__(self, installed_at: Any) -> None:
        self._installed_at = installed_at  # () -> datetime | None: the gateway's first start

    def products(self, site: Site) -> dict[str, Any]:
        """The site's products entry."""
        entry: dict[str, Any] = orjson.loads(to_json(products_entry(site)))
        return entry

    def site_info(self, site: Site) -> dict[str, Any] | None:
        """site_info's response, or None while it would answer 408."""
        installed: datetime | None = self._installed_at()
        try:
            body: dict[str, Any] = orjson.loads(to_json(site_info_body(site, installed)))
        except SiteOffline:
            return None
        return body

    def live_status(self, site: Site) -> tuple[dict[str, Any] | None, str | None]:
        """live_status's response, or None and why the site is offline."""
        try:
            body: dict[str, Any] = orjson.loads(to_json(live_status_body(site)))
        except SiteOffline as exc:
            return None, exc.description
        return body, None

    def still_wanted(self, site: Site, command: str, body: dict[str, Any]) -> bool:
        """Whether the site's desired settings still hold what ``command`` asked for."""
        found = _BY_NAME.get(command)
        if found is None:
            return False
        try:
            changes = found.changes(validate(found.model, body))
        except FleetError:
            return False
        return all(getattr(site.settings, name) == value for name, value in changes.items())

    async def run_command(self, site: Site, command: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The local POST's pipeline: body validation, then ``Site.command``; its Fleet answer."""
        found = _BY_NAME.get(command)
        try:
            if found is None:
                raise NotFound(f"no command {command[:64]!r}")  # noqa: TRY301 - answered below
            changes = found.changes(validate(found.model, body))
            await site.command(found.name, changes)
        except FleetError as exc:
            return error_body(exc)
        except (GatewayError, DriverError) as exc:
            return error_body(to_fleet(exc))
        except Exception:  # an outcome is owed whatever happened
            log.exception("uplink.command_crashed", site_id=site.id, command=command)
            return error_body(FleetError("internal error", error="upstream internal error"))
        answer: dict[str, Any] = orjson.loads(to_json(found.answer))
        return 200, answer
