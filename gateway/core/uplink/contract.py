"""Uplink contract v1: topic names and the pydantic payload of every message (docs/hub.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

#: The contract's version: in every payload (``"v": 1``); a message of another version is dropped.
VERSION: Final = 1
DEFAULT_BASE_TOPIC: Final = "energy-gateway/v1"
#: The largest payload either side accepts (a site_info is a few kB; bucket batches are capped).
MAX_PAYLOAD_BYTES: Final = 256 * 1024
#: History buckets per message at most (catch-up after a long outage is sent in batches).
MAX_BUCKETS_PER_MESSAGE: Final = 288  # one day of 5-minute buckets
#: The longest wait a command may ask of an edge (expires_at beyond this is clipped by the hub).
MAX_COMMAND_TTL_S: Final = 300.0
MAX_OUTAGES_PER_MESSAGE: Final = 500
#: An outages (charges) message carries the outages (finished charging sessions) that started
#: this long ago at most (and any open outage).
OUTAGE_WINDOW_S: Final = 30 * 86_400.0
#: Outcome statuses that did not settle a command: device offline, a crash, unavailable (a
#: restart interrupted it, a device unreachable), not confirmed. The site keeps the setting in
#: each case, so a retry of the same command id runs the pipeline again (hub and edge) instead
#: of repeating the old answer, unless a newer command changed that setting since.
UNSETTLED: Final = frozenset({408, 500, 503, 504})

_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
GatewayId = Annotated[str, StringConstraints(pattern=_ID.pattern)]
CommandId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,80}$")]
SiteId = Annotated[int, Field(ge=1, lt=2**53)]


def valid_gateway_id(value: str) -> bool:
    """Whether ``value`` can name a gateway in a topic (no wildcards, no slashes)."""
    return _ID.match(value) is not None


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = VERSION


class Presence(_Message):
    """``{base}/{gw}/presence`` (retained; the last will says ``online: false``)."""

    gateway_id: GatewayId
    online: bool
    sites: list[SiteId] = Field(default_factory=list, max_length=10_000)
    at: float  # unix seconds (the edge's wall clock)


class SiteInfoMessage(_Message):
    """``{base}/{gw}/sites/{site}/info`` (retained): the site's products entry and site_info body.

    ``site_info`` is null while a device was never reached (the edge would answer 408).
    """

    site_id: SiteId
    products: dict[str, Any]
    site_info: dict[str, Any] | None
    at: float


class LiveMessage(_Message):
    """``{base}/{gw}/sites/{site}/live`` (QoS 1): on change and at least every ``live_every_s``.

    ``live_status`` is the Fleet body's ``response``; when the site is offline it is null and
    ``offline`` carries the description the edge would answer with its 408.
    """

    site_id: SiteId
    seq: int = Field(ge=0)  # per edge process, increasing: the hub keeps the newest
    live_status: dict[str, Any] | None
    offline: str | None = None
    at: float


class HistoryBucket(BaseModel):
    """One closed 5-minute bucket: the seven flows in Wh (docs/storage.md, energy_5min)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float  # unix seconds, 5-minute aligned
    solar_to_home: float
    solar_to_battery: float
    solar_to_grid: float
    battery_to_home: float
    battery_to_grid: float
    grid_to_home: float
    grid_to_battery: float


class HistoryMessage(_Message):
    """``{base}/{gw}/sites/{site}/history`` (QoS 1): closed buckets, whole values.

    Idempotent: the hub stores each bucket by (site, start), replacing, so a re-sent batch
    after a reconnect changes nothing.
    """

    site_id: SiteId
    buckets: list[HistoryBucket] = Field(max_length=MAX_BUCKETS_PER_MESSAGE)


class OutageEntry(BaseModel):
    """One grid outage: unix seconds; ``end`` null while it lasts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float
    end: float | None = None


class OutagesMessage(_Message):
    """``{base}/{gw}/sites/{site}/outages`` (retained, QoS 1): the site's outages of the last
    ``OUTAGE_WINDOW_S``, oldest first, sent when they change (an outage opens or closes).

    Idempotent: the hub stores each by (site, start), replacing its end; older ones it keeps.
    """

    site_id: SiteId
    outages: list[OutageEntry] = Field(max_length=MAX_OUTAGES_PER_MESSAGE)
    at: float


class ChargeEntry(BaseModel):
    """One finished charging session: start (unix s), its length (s) and energy (Wh)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float
    duration_s: float = Field(ge=0)
    energy_wh: float = Field(ge=0)


class ChargesMessage(_Message):
    """``{base}/{gw}/sites/{site}/charges`` (retained, QoS 1): the site's finished charging
    sessions of the last ``OUTAGE_WINDOW_S``, oldest first, sent when one more has finished.

    Idempotent: the hub stores each by (site, start), replacing; older ones it keeps.
    """

    site_id: SiteId
    sessions: list[ChargeEntry] = Field(max_length=MAX_OUTAGES_PER_MESSAGE)
    at: float


class CommandMessage(_Message):
    """``{base}/{gw}/commands`` (hub → edge, QoS 1): run a Fleet command on one of its sites."""

    command_id: CommandId
    site_id: SiteId
    command: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")]
    body: dict[str, Any]
    expires_at: float  # unix seconds: an edge receiving it later drops it unapplied


class OutcomeMessage(_Message):
    """``{base}/{gw}/outcomes`` (edge → hub, QoS 1): what the edge would have answered locally.

    ``body`` is the whole Fleet JSON body (``{"response": ...}`` or the error envelope).
    """

    command_id: CommandId
    site_id: SiteId
    command: str
    status: int = Field(ge=100, le=599)
    body: dict[str, Any]
    at: float


_SITE_KINDS: Final = frozenset({"info", "live", "history", "outages", "charges"})


class Topics:
    """The topic names of one base topic (``{base}/{gateway_id}/...``)."""

    def __init__(self, base: str) -> None:
        self.base = base.strip("/")

    def presence(self, gw: str) -> str:
        """Retained presence of a gateway."""
        return f"{self.base}/{gw}/presence"

    def info(self, gw: str, site_id: int) -> str:
        """Retained site description."""
        return f"{self.base}/{gw}/sites/{site_id}/info"

    def live(self, gw: str, site_id: int) -> str:
        """Live status of a site."""
        return f"{self.base}/{gw}/sites/{site_id}/live"

    def history(self, gw: str, site_id: int) -> str:
        """Closed history buckets of a site."""
        return f"{self.base}/{gw}/sites/{site_id}/history"

    def outages(self, gw: str, site_id: int) -> str:
        """Retained recent grid outages of a site."""
        return f"{self.base}/{gw}/sites/{site_id}/outages"

    def charges(self, gw: str, site_id: int) -> str:
        """Retained recent charging sessions of a site."""
        return f"{self.base}/{gw}/sites/{site_id}/charges"

    def commands(self, gw: str) -> str:
        """Commands for a gateway's sites."""
        return f"{self.base}/{gw}/commands"

    def outcomes(self, gw: str) -> str:
        """Outcomes of a gateway's commands."""
        return f"{self.base}/{gw}/outcomes"

    def hub_filters(self) -> list[str]:
        """What the hub subscribes to: every gateway's uplink topics (not the commands)."""
        return [f"{self.base}/+/presence", f"{self.base}/+/sites/+/+", f"{self.base}/+/outcomes"]

    def parse(self, topic: str) -> tuple[str, str, int | None] | None:
        """``(gateway_id, kind, site_id)`` of an uplink topic, or None when it is not one.

        ``kind`` is presence, info, live, history, outages, charges, commands or outcomes.
        """
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix):].split("/")
        if not parts or not valid_gateway_id(parts[0]):
            return None
        gw = parts[0]
        if len(parts) == 2 and parts[1] in {"presence", "commands", "outcomes"}:
            return gw, parts[1], None
        if len(parts) == 4 and parts[1] == "sites" and parts[3] in _SITE_KINDS \
                and parts[2].isdigit() and len(parts[2]) <= 16:
            return gw, parts[3], int(parts[2])
        return None


MESSAGES: Final[dict[str, type[_Message]]] = {
    "presence": Presence, "info": SiteInfoMessage, "live": LiveMessage,
    "history": HistoryMessage, "outages": OutagesMessage, "charges": ChargesMessage,
    "commands": CommandMessage,
    "outcomes": OutcomeMessage,
}


class ContractError(ValueError):
    """A payload that does not fit the contract: why, in one line (for the drop log)."""


def decode(kind: str, payload: bytes) -> _Message:
    """The message of ``kind`` in ``payload``; ContractError when too large or invalid."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return MESSAGES[kind].model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise ContractError(f"{where}: {first['msg']}") from None


def encode(message: BaseModel) -> bytes:
    """The JSON payload of a message."""
    return message.__pydantic_serializer__.to_json(message)
