"""The wall connector entries of live_status and site_info, from the site's OCPP charge points."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from gateway.runtime.ocpp.state import ChargerState
from gateway.web.renderers.models import WallConnectorComponent, WallConnectorStatus


def wall_connectors_live(chargers: Sequence[ChargerState]) -> list[WallConnectorStatus]:
    """``live_status.wall_connectors``: one entry per charge point (din = its OCPP id)."""
    out = []
    for cp in chargers:
        out.append(WallConnectorStatus.model_construct(
            din=cp.id, wall_connector_state=cp.state,
            wall_connector_fault_state=cp.fault_state,
            wall_connector_power=round(cp.power_w)))
    return out


def wall_connectors_key(chargers: Sequence[ChargerState]) -> Hashable:
    """What the live entries show, to tell when a cached body is out of date."""
    return tuple((cp.state, cp.fault_state, round(cp.power_w)) for cp in chargers)


def wall_connector_components(site_id: int,
                              chargers: Sequence[ChargerState]) -> list[WallConnectorComponent]:
    """``site_info.components.wall_connectors``: every configured charge point."""
    out = []
    for cp in chargers:
        model = " ".join(filter(None, (cp.boot.get("vendor"), cp.boot.get("model"))))
        serial = cp.boot.get("serial")
        out.append(WallConnectorComponent.model_construct(
            device_id=f"{site_id}-{cp.id}", din=cp.id,
            part_name=cp.config.name or model or "OCPP 1.6 charge point",
            is_active=cp.connected,
            # absent (not null) until the charge point's BootNotification told them
            serial_number=serial or None, part_number=cp.boot.get("model") or None))
    return out
