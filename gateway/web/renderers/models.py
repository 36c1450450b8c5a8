"""The pydantic models of every response body (docs/api.md): what renderers build, what OpenAPI shows.

Renderers build these with ``model_construct`` (typed by the pydantic mypy plugin, not validated:
bodies are built on hot paths) and serialise them with ``gateway.web.errors.to_json``; the tests
validate every renderer's output against its model instead. The entries of history series are
TypedDicts: an answer holds up to 10,000 of them, built at the speed of plain dicts and still
typed, serialised and described through the body that holds them.

Key presence is part of the wire (docs/api.md "Bodies"): a key marked ``absent_unless_set`` is
left out of the body when it has no value, never sent as ``null``; every other key is always
there, ``null`` only where its type says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NotRequired,  # pydantic needs this one on Python < 3.12
    TypeVar,
)

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, WithJsonSchema, with_config
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import core_schema
from typing_extensions import TypedDict

from drivers.base import Quality
from gateway.core.history import Period
from gateway.core.tariff.wire import TariffContentV2

# --- field types --------------------------------------------------------------------------------

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""An RFC 3339 date-time with an offset, as ``rfc3339`` writes it."""


def rfc3339(at: datetime, tz: tzinfo, *, timespec: str = "auto") -> str:
    """``at`` as local time in ``tz``, RFC 3339: an offset in whole minutes.

    Before standard time, zones kept local mean time with offsets in seconds (Europe/Amsterdam
    until 1937: +00:19:32), which RFC 3339 cannot write and ``isoformat`` writes anyway: such an
    instant is written with its offset cut to the minute: the same instant, its wall clock then
    showing the odd seconds.
    """
    local = at.astimezone(tz)
    offset = local.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        local = at.astimezone(timezone(timedelta(minutes=offset // timedelta(minutes=1))))
    return local.isoformat(timespec=timespec)

Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
"""A JSON number served exactly as it was read (an int stays ``5000``, a float ``5000.0``)."""

ExportRule = Literal["battery_ok", "pv_only", "never"]
RealMode = Literal["self_consumption", "autonomous", "backup"]


def _is_none(value: object) -> bool:
    return value is None


def _no_default(schema: JsonDict) -> None:
    schema.pop("default", None)  # an absent key has no value, not a null one


def absent_unless_set() -> Any:
    """A key the body carries only with a value: absent, never ``null`` (clients key on presence)."""
    return Field(default=None, exclude_if=_is_none, json_schema_extra=_no_default)


class _TariffAsSent:
    """``tariff_content_v2`` exactly as the client sent it (unknown keys and number forms kept),
    described and validated as the tariff wire model."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def check_and_keep(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> Any:
            validate(value)
            return value

        return core_schema.json_or_python_schema(
            # JSON (a served body read back): checked against the tariff model, kept as is
            json_schema=core_schema.no_info_wrap_validator_function(
                check_and_keep, handler.generate_schema(TariffContentV2)),
            # Python (a renderer's value): the tariff was validated when it was set
            python_schema=core_schema.dict_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda value: value))


TariffAsSent = Annotated[dict[str, Any], _TariffAsSent]


class _Body(BaseModel):
    # extra="forbid": validating a rendered body in the tests catches a key the model lacks;
    # serialization defaults required: a key with a default is still always on the wire.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              json_schema_serialization_defaults_required=True)


T = TypeVar("T")


class Envelope(_Body, Generic[T]):
    """``{"response": ...}``: every success (docs/api.md "Envelopes and statuses")."""

    response: T


# --- products -----------------------------------------------------------------------------------


class ProductComponents(_Body):
    """``components`` of a products entry: what the site's devices are."""

    battery: bool
    solar: bool
    grid: bool
    load_meter: bool
    market_type: Literal["residential"] = "residential"
    solar_type: Literal["pv_panel"] | SkipJsonSchema[None] = absent_unless_set()
    battery_type: Literal["ac_powerwall", "solar_powerwall"] | SkipJsonSchema[None] = \
        absent_unless_set()


class Features(_Body):
    rate_plan_manager_no_pricing_constraint: bool = True


class ProductEntry(_Body):
    """One energy site of ``GET /api/1/products``; the live fields only while it is online."""

    energy_site_id: int
    device_type: Literal["energy"] = "energy"
    resource_type: Literal["battery", "solar"]
    site_name: str
    id: str
    gateway_id: str
    asset_site_id: str = ""
    warp_site_number: str
    backup_capable: bool
    storm_mode_enabled: bool
    components: ProductComponents
    features: Features
    percentage_charged: Number | SkipJsonSchema[None] = absent_unless_set()
    energy_left: Number | SkipJsonSchema[None] = absent_unless_set()
    total_pack_energy: Number | SkipJsonSchema[None] = absent_unless_set()
    battery_power: Number | SkipJsonSchema[None] = absent_unless_set()


class ProductsResponse(Envelope[list[ProductEntry]]):
    """``GET /api/1/products``: the sites the token can reach, and how many."""

    count: int


# --- live_status --------------------------------------------------------------------------------


class WallConnectorStatus(_Body):
    """One wall connector in ``live_status``: an OCPP charge point of the site (docs/chargers.md)."""

    din: str
    vin: str | SkipJsonSchema[None] = absent_unless_set()
    wall_connector_state: int
    wall_connector_fault_state: int
    wall_connector_power: Number
    ocpp_status: int | SkipJsonSchema[None] = absent_unless_set()
    powershare_session_state: int | SkipJsonSchema[None] = absent_unless_set()


class LiveStatus(_Body):
    """``live_status``: power in W (battery + discharging, grid + importing), the balance
    ``load_power = solar_power + battery_power + grid_power`` holding in the served integers."""

    solar_power: int
    battery_power: int
    grid_power: int
    load_power: int
    generator_power: int = 0
    grid_services_power: int = 0
    grid_services_active: bool = False
    backup_capable: bool
    grid_status: Literal["Active", "Inactive", "Unknown"]
    island_status: Literal["on_grid", "off_grid", "off_grid_intentional",
                           "off_grid_unintentional", "island_status_unknown"]
    storm_mode_active: bool
    timestamp: Timestamp
    wall_connectors: list[WallConnectorStatus]
    percentage_charged: Number | SkipJsonSchema[None] = absent_unless_set()
    energy_left: Number | SkipJsonSchema[None] = absent_unless_set()
    total_pack_energy: Number | SkipJsonSchema[None] = absent_unless_set()


class LiveStatusResponse(Envelope[LiveStatus]):
    """``GET .../live_status``."""


# --- site_info ----------------------------------------------------------------------------------


class GatewayComponent(_Body):
    device_id: str
    din: str
    serial_number: str
    part_number: str
    part_type: Literal[10] = 10
    part_name: str
    is_active: bool = True
    site_id: str
    firmware_version: str


class BatteryComponent(_Body):
    device_id: str
    din: str
    serial_number: str
    part_number: str
    part_type: Literal[2] = 2
    part_name: str
    nameplate_max_charge_power: Number
    nameplate_max_discharge_power: Number
    nameplate_energy: Number
    is_active: bool = True


class InverterComponent(_Body):
    device_id: str
    din: str
    part_number: str
    part_type: Literal[7] = 7
    part_name: str
    is_active: bool = True
    site_id: str
    firmware_version: str


class WallConnectorComponent(_Body):
    """A wall connector of the site: a configured OCPP charge point (docs/chargers.md)."""

    device_id: str
    din: str
    part_name: str
    is_active: bool
    serial_number: str | SkipJsonSchema[None] = absent_unless_set()
    part_number: str | SkipJsonSchema[None] = absent_unless_set()
    part_type: int | SkipJsonSchema[None] = absent_unless_set()


class SiteComponents(ProductComponents):
    """``site_info.components``: the products components plus capabilities and settings."""

    backup: bool
    gateway: Literal["teg"] = "teg"
    tou_capable: bool
    storm_mode_capable: bool
    off_grid_vehicle_charging_reserve_supported: bool
    configurable: bool = True
    grid_services_enabled: bool = False
    edit_setting_grid_charging: bool
    edit_setting_energy_exports: bool
    edit_setting_permission_to_export: bool
    customer_preferred_export_rule: ExportRule
    non_export_configured: bool
    disallow_charge_from_grid_with_solar_installed: bool
    set_islanding_mode_enabled: bool = False
    backup_time_remaining_enabled: bool = False
    gateways: list[GatewayComponent]
    batteries: list[BatteryComponent]
    inverters: list[InverterComponent]
    wall_connectors: list[WallConnectorComponent]


class UserSettings(_Body):
    """``site_info.user_settings``; the ``None`` ones are always sent as ``null``."""

    storm_mode_enabled: bool
    off_grid_vehicle_charging_enabled: bool
    go_off_grid_test_banner_enabled: bool | None = None
    powerwall_onboarding_settings_set: bool = True
    powerwall_tesla_electric_interested_in: bool | None = None
    vpp_tour_enabled: bool | None = None
    sync_grid_alert_enabled: bool = False
    breaker_alert_enabled: bool = False


class AppSettings(_Body):
    live_status_local_refresh_s: int = 1


class SiteInfo(_Body):
    """``site_info``: settings, components and nameplates (docs/api.md "site_info")."""

    id: str
    site_name: str
    backup_reserve_percent: int = Field(ge=0, le=100)
    default_real_mode: RealMode
    installation_date: Timestamp | SkipJsonSchema[None] = absent_unless_set()
    installation_time_zone: str
    user_settings: UserSettings
    components: SiteComponents
    version: str
    battery_count: int
    nameplate_power: Number
    nameplate_energy: Number
    max_site_meter_power_ac: int | SkipJsonSchema[None] = absent_unless_set()
    min_site_meter_power_ac: int | SkipJsonSchema[None] = absent_unless_set()
    off_grid_vehicle_charging_reserve_percent: int = Field(ge=0, le=100)
    vpp_backup_reserve_percent: int = 0
    app_settings: AppSettings
    tariff_content_v2: TariffAsSent | SkipJsonSchema[None] = absent_unless_set()


class SiteInfoResponse(Envelope[SiteInfo]):
    """``GET .../site_info``."""


# --- history ------------------------------------------------------------------------------------


@with_config(ConfigDict(extra="forbid"))
class EnergyFields(TypedDict):
    """The energy of one entry in Wh (docs/api.md "History" gives the identities they keep)."""

    solar_energy_exported: float
    generator_energy_exported: float
    grid_energy_imported: float
    grid_services_energy_imported: float
    grid_services_energy_exported: float
    grid_energy_exported_from_solar: float
    grid_energy_exported_from_generator: float
    grid_energy_exported_from_battery: float
    battery_energy_exported: float
    battery_energy_imported_from_grid: float
    battery_energy_imported_from_solar: float
    battery_energy_imported_from_generator: float
    consumer_energy_imported_from_grid: float
    consumer_energy_imported_from_solar: float
    consumer_energy_imported_from_battery: float
    consumer_energy_imported_from_generator: float
    total_home_usage: float
    total_battery_charge: float
    total_battery_discharge: float
    total_solar_generation: float
    total_grid_energy_exported: float


@with_config(ConfigDict(extra="forbid"))
class EnergyEntry(EnergyFields):
    """One ``time_series`` entry: its local start (``timestamp``) and its energy."""

    timestamp: Timestamp


class EnergyHistory(_Body):
    """``calendar_history?kind=energy``."""

    period: Period
    installation_time_zone: str
    time_series: list[EnergyEntry]


class EnergyHistoryResponse(Envelope[EnergyHistory]):
    """``GET .../calendar_history?kind=energy``."""


@with_config(ConfigDict(extra="forbid"))
class StormPrecharge(TypedDict):
    """The storm alert the battery was pre-charged for when an outage began (not a Fleet key)."""

    event: str
    source: str
    since: Timestamp
    alert_ends: Timestamp | None


def _outage_keys_required(schema: JsonDict) -> None:
    # The bodies' config (serialization defaults required) would mark storm_watch required too.
    schema["required"] = ["timestamp", "duration"]


@with_config(ConfigDict(json_schema_extra=_outage_keys_required))
class BackupEvent(TypedDict):
    """One grid outage: its local start and how long it lasted (or has lasted), in seconds;
    ``storm_watch`` (absent otherwise) when storm mode had been charging for an alert as the
    outage began."""

    timestamp: Timestamp
    duration: int
    storm_watch: NotRequired[StormPrecharge]


class BackupHistory(_Body):
    """``calendar_history?kind=backup``."""

    events: list[BackupEvent]
    total_events: int


class BackupHistoryResponse(Envelope[BackupHistory]):
    """``GET .../calendar_history?kind=backup``."""


@with_config(ConfigDict(extra="forbid"))
class Seconds(TypedDict):
    seconds: int


@with_config(ConfigDict(extra="forbid"))
class ChargeEntry(TypedDict):
    """One wall-connector charging session."""

    charge_start_time: Seconds
    charge_duration: Seconds
    energy_added_wh: Number


class ChargeHistory(_Body):
    """``telemetry_history?kind=charge``: the same sessions under both keys clients read."""

    charge_history: list[ChargeEntry]
    time_series: list[ChargeEntry]


class ChargeHistoryResponse(Envelope[ChargeHistory]):
    """``GET .../telemetry_history?kind=charge``."""


# --- commands -----------------------------------------------------------------------------------


class CommandOk(_Body):
    """What a confirmed command answers (inside ``response``)."""

    code: Literal[201] = 201
    message: Literal["Updated"] = "Updated"


class CommandResponse(Envelope[CommandOk]):
    """A confirmed command: ``{"response": {"code": 201, "message": "Updated"}}``."""


class EmptyStringResponse(Envelope[Literal[""]]):
    """A confirmed ``grid_import_export``: ``{"response": ""}``, as Tesla's service answers it."""


# --- /health ------------------------------------------------------------------------------------


class DeviceHealth(_Body):
    """One device in ``/health`` (docs/api.md "Health")."""

    type: str
    quality: Quality
    connected: bool
    data_age_s: float | None
    polls: int
    failures: int
    missed_polls: int
    last_error: str | None


class StormAlertBody(_Body):
    """One active storm alert: which, from which source, from when to when (null: not said)."""

    event: str
    source: str
    onset: Timestamp | None
    ends: Timestamp | None
    id: str
    headline: str
    severity: str


class StormSourceHealth(_Body):
    """An alert source: ``unknown`` before its first answer, ``failing`` while it does not
    answer (its alerts are kept until their ends)."""

    status: Literal["unknown", "ok", "failing"]
    failures: int
    last_error: str | None
    last_ok_at: Timestamp | None
    alerts: int


class StormWatchHealth(_Body):
    active: bool
    sources: dict[str, StormSourceHealth]


class ChargerHealth(_Body):
    """One OCPP charge point in ``/health`` (docs/chargers.md)."""

    connected: bool
    last_seen: Timestamp | None  # its last message, UTC
    wall_connector_state: int


class SiteHealth(_Body):
    name: str
    devices: dict[str, DeviceHealth]
    drift_count: int
    reconciliations: int
    storm_watch: StormWatchHealth
    chargers: dict[str, ChargerHealth] | SkipJsonSchema[None] = absent_unless_set()


class StormEpisodeBody(_Body):
    """A span storm mode acted: for which alert (the one ending last), from which source."""

    event: str
    source: str
    started: Timestamp
    ended: Timestamp | None
    alert_onset: Timestamp | None
    alert_ends: Timestamp | None


class StormStatus(_Body):
    """``GET /api/1/energy_sites/{id}/storm_alert``: what storm watch sees and does now, and the
    last storm-mode episodes (newest first)."""

    storm_mode_enabled: bool
    storm_mode_active: bool
    alerts: list[StormAlertBody]
    active_since: Timestamp | None
    sources: dict[str, StormSourceHealth]
    episodes: list[StormEpisodeBody]


class StormStatusResponse(_Body):
    response: StormStatus


class ClockHealth(_Body):
    """Where the gateway's time comes from, in ``/health`` (docs/api.md "Clock")."""

    source: Literal["wall", "simulator", "in_process"]
    state: Literal["ok", "unreachable"]
    now: str
    speed: float
    url: str | None
    last_sync_age_s: float | None
    offset_s: float | None
    error: str | None


class Health(_Body):
    """``GET /health`` (no envelope): ``ok`` when every device is fresh and the clock source
    answers, else ``degraded``."""

    status: Literal["ok", "degraded"]
    sites: dict[str, SiteHealth]
    clock: ClockHealth | None = None


# --- gateway_status (the installer's page) -----------------------------------------------------


class DeviceStatus(_Body):
    """One device on the status page: ``/health``'s fields plus its name and last good read."""

    name: str
    type: str
    quality: Quality
    connected: bool
    last_poll: str | None  # RFC 3339 in the site's zone: the last good read; null before it
    data_age_s: float | None
    polls: int
    failures: int
    last_error: str | None


class Alert(_Body):
    kind: Literal["storm", "grid_outage", "device_offline", "device_failing"]
    message: str


class JournalEntry(_Body):
    """One command of the journal (docs/storage.md, command_journal)."""

    id: int
    command: str
    changes: dict[str, Any]
    received_at: str  # RFC 3339, UTC
    status: str  # pending, confirmed, kept, rejected, interrupted
    detail: str
    finished_at: str | None


class GatewayStatus(_Body):
    name: str
    devices: list[DeviceStatus]
    alerts: list[Alert]
    journal: list[JournalEntry]
    drift_count: int


class GatewayStatusResponse(Envelope[GatewayStatus]):
    """``GET /api/1/energy_sites/{id}/gateway_status`` (docs/api.md "Status page")."""
