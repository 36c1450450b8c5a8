"""The configuration keys of a Victron GX (importable without its transport)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from drivers.mqtt_login import BrokerLoginOptions


class GxPath(BaseModel):
    """A value the GX publishes, by its path under ``N/<portal>/`` (``<service>/<instance>/<D-Bus path>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[0-9]+(/[A-Za-z0-9_.-]+)+$")


class VictronGxOptions(BrokerLoginOptions):
    """Configuration of one Victron GX reached over its MQTT broker (dbus-flashmq topics).

    ``portal_id`` None discovers it from the retained ``N/+/system/0/Serial`` (first GX seen).
    ``vebus_instance`` None takes the VE.Bus unit's device instance from the GX's
    ``system/0/VebusInstance`` (it differs between GX models and ports).
    ``keepalive_s``: the keepalive cycle; each cycle extends publishing (below the GX's 60 s
    timeout, without a full republish) and asks the GX to re-publish one value, which it answers
    whether or not anything changed. ``probe_timeout_s``: read() fails once that answer is overdue
    by this long. Venus publishes only changes, so the age of the last value proves nothing: a
    quiet night (no PV, steady load) may change nothing for hours while the GX is alive. (A
    device's ``stale_after_s`` key is the gateway's stale limit, not an option of this driver.)
    ``storm_alert``: a path whose value reports a storm watch (non-zero / true = alert), e.g. a
    virtual switch or an installer's own service; Venus OS has no such path of its own, so unset
    the GX reports no storm alert and no ``storm_watch`` capability.
    ``username`` / ``password`` / ``tls``: the GX broker's login (Venus OS's secured profile
    refuses anonymous clients; its TLS port is 8883), see ``drivers.mqtt_login``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(1883, ge=1, le=65535)
    portal_id: str | None = Field(None, pattern=r"^[0-9A-Za-z]{1,32}$")
    vebus_instance: int | None = Field(None, ge=0, le=65535)
    keepalive_s: float = Field(10.0, gt=0, lt=60)
    probe_timeout_s: float = Field(10.0, gt=0)
    confirm_timeout_s: float = Field(3.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)  # broker connection, discovery, full publish
    capacity_wh: float | None = Field(None, gt=0)  # battery nameplate (the GX does not publish it)
    storm_alert: GxPath | None = None
