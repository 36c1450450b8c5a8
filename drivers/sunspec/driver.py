"""The SunSpec Modbus TCP driver: discovery, normalised telemetry, setpoints on models 123/124."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import ClassVar

import structlog

from drivers.base import (
    SETPOINT_CAPABILITIES,
    Capability,
    Counters,
    DeviceInfo,
    DeviceTelemetry,
    Setpoints,
)
from drivers.errors import (
    CapabilityMissing,
    ConfigurationError,
    DeviceRejected,
    DeviceUnreachable,
    NotConfirmed,
)
from drivers.sunspec.codec import (
    DEFAULT_BASE_ADDRESSES,
    Discovery,
    ModelBlock,
    ModelLocation,
    SunSpecMap,
    decode_model,
    discovery_step,
    model_def,
    plan_reads,
    start_discovery,
)
from drivers.sunspec.options import SunSpecOptions, VendorBit
from drivers.transport import ModbusEndpoint, Priority, Transports

__all__ = [
    "INVERTER_MODELS",
    "METER_MODELS",
    "PointTarget",
    "SunSpecDriver",
    "SunSpecOptions",
    "capabilities_from",
    "device_info_from",
    "setpoint_targets",
    "setpoints_from",
    "telemetry_from",
]

INVERTER_MODELS = (103, 102, 101)
METER_MODELS = (203, 204, 201, 202)
_CONTROL_MODELS = (123, 124)
# Writing it restarts the device's timer for a battery command (SunSpec 124): always re-sent.
_REVERT_POINT = "InOutWRte_RvrtTms"
# 123 rides along in the span that reads 103 (no extra round trip): the setpoints the device
# holds come with every poll, so a reboot to factory values shows on the next read.
_TELEMETRY_MODELS = (*INVERTER_MODELS, 123, 124, 802, *METER_MODELS)
_IDENTITY_MODELS = (1, 120, 121, 123, 124, 702, 802, *INVERTER_MODELS, *METER_MODELS)

_STORCTL_CHARGE = 1  # StorCtl_Mod bit 0
_STORCTL_DISCHARGE = 2  # StorCtl_Mod bit 1
_EVT1_GRID_DISCONNECT = 1 << 4


Blocks = Mapping[int, ModelBlock]


def _first(blocks: Blocks, *model_ids: int) -> ModelBlock | None:
    return next((blocks[m] for m in model_ids if m in blocks), None)


def _num(block: ModelBlock | None, point: str) -> float | None:
    if block is None or point not in block.slots:
        return None
    return block.number(point)


def _int(block: ModelBlock | None, point: str) -> int | None:
    if block is None or point not in block.slots:
        return None
    raw = block.raw(point)
    return raw if isinstance(raw, int) else None


def _text(block: ModelBlock | None, point: str) -> str:
    if block is None:
        return ""
    raw = block.raw(point)
    return raw.strip() if isinstance(raw, str) else ""


def _has(block: ModelBlock | None, *points: str) -> bool:
    return block is not None and all(block.implemented(p) for p in points)


def _coalesce(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


# --------------------------------------------------------------------------- pure mapping


def capabilities_from(blocks: Blocks, *, storm_alert: VendorBit | None = None) -> frozenset[Capability]:
    """What a device with these decoded models can measure and honour.

    ``storm_watch`` only with a configured ``storm_alert`` bit on a point the inverter implements.
    """
    inverter = _first(blocks, *INVERTER_MODELS)
    storage = blocks.get(124)
    controls = blocks.get(123)
    caps: set[Capability] = set()
    if inverter is not None:
        caps.add(Capability.SOLAR)
    if 802 in blocks or _has(storage, "ChaState"):
        caps.add(Capability.BATTERY)
    if _first(blocks, *METER_MODELS) is not None:
        caps.add(Capability.GRID_METER)
    if _has(inverter, "Evt1"):
        caps.add(Capability.GRID_STATUS)
    if storm_alert is not None and _has(inverter, storm_alert.point):
        caps.add(Capability.STORM_WATCH)
    if _has(storage, "MinRsvPct"):
        caps.add(Capability.BACKUP_RESERVE)
    if _has(storage, "ChaGriSet"):
        caps.add(Capability.GRID_CHARGING)
    if _has(controls, "WMaxLimPct"):
        caps.add(Capability.EXPORT_LIMIT)
    if _has(storage, "StorCtl_Mod", "InWRte", "OutWRte"):
        caps.add(Capability.BATTERY_POWER)
    return frozenset(caps)


def device_info_from(blocks: Blocks) -> DeviceInfo:
    """Identity (model 1) and ratings (802, then 120/702/124) of the device."""
    common = blocks.get(1)
    nameplate = blocks.get(120)
    battery = blocks.get(802)
    return DeviceInfo(
        manufacturer=_text(common, "Mn"),
        model=_text(common, "Md"),
        serial_number=_text(common, "SN"),
        firmware_version=_text(common, "Vr"),
        nameplate_power_w=_coalesce(
            _num(nameplate, "WRtg"), _num(blocks.get(702), "WMaxRtg"), _num(blocks.get(121), "WMax")
        ),
        battery_capacity_wh=_coalesce(_num(battery, "WHRtg"), _num(nameplate, "WHRtg")),
        max_charge_w=_coalesce(
            _num(battery, "WChaRteMax"),
            _num(nameplate, "MaxChaRte"),
            _num(blocks.get(124), "WChaMax"),
        ),
        max_discharge_w=_coalesce(_num(battery, "WDisChaRteMax"), _num(nameplate, "MaxDisChaRte")),
    )


def telemetry_from(
    blocks: Blocks,
    *,
    now: datetime,
    battery_sign: int = 1,
    meter_sign: int = 1,
    capacity_wh: float | None = None,
    storm_alert: VendorBit | None = None,
) -> DeviceTelemetry:
    """Normalise decoded models into telemetry (W, Wh, %).

    ``battery_w`` + discharging (802 W x ``battery_sign``); ``grid_w`` + importing (meter W x
    ``meter_sign``); ``solar_w`` >= 0 from the inverter's DC power (its AC power minus the battery
    when DCW is not implemented); ``load_w = solar_w + battery_w + grid_w`` when a meter exists.
    ``storm_alert`` is the configured vendor event bit, None (unknown) when none is configured.
    """
    inverter = _first(blocks, *INVERTER_MODELS)
    meter = _first(blocks, *METER_MODELS)
    battery = blocks.get(802)
    storage = blocks.get(124)

    battery_w = _num(battery, "W")
    if battery_w is not None:
        battery_w *= battery_sign
    solar_w = _num(inverter, "DCW")
    if solar_w is None:
        ac_w = _num(inverter, "W")
        solar_w = None if ac_w is None else ac_w - (battery_w or 0.0)
    if solar_w is not None:
        solar_w = max(0.0, solar_w)  # DC sensors read a few W negative at night
    grid_w = _num(meter, "W")
    if grid_w is not None:
        grid_w *= meter_sign
    load_w = None if grid_w is None else (solar_w or 0.0) + (battery_w or 0.0) + grid_w

    evt1 = _int(inverter, "Evt1")
    vendor = None if storm_alert is None else _int(inverter, storm_alert.point)
    imported = _num(meter, "TotWhImp")
    exported = _num(meter, "TotWhExp")
    if meter_sign < 0:  # the meter's "import" is the site's export
        imported, exported = exported, imported
    return DeviceTelemetry(
        taken_at=now,
        solar_w=solar_w,
        battery_w=battery_w,
        grid_w=grid_w,
        load_w=load_w,
        soc_pct=_coalesce(_num(battery, "SoC"), _num(storage, "ChaState")),
        capacity_wh=_coalesce(_num(battery, "WHRtg"), capacity_wh),
        grid_up=None if evt1 is None else not evt1 & _EVT1_GRID_DISCONNECT,
        storm_alert=None if vendor is None or storm_alert is None else bool(vendor & storm_alert.mask),
        counters=Counters(grid_import_wh=imported, grid_export_wh=exported),
    )


@dataclass(frozen=True, slots=True)
class PointTarget:
    """A raw value one point must hold for a setpoint, in write order."""

    model_id: int
    point: str
    raw: int


def _pct(part_w: float, full_w: float | None) -> float:
    if not full_w:
        raise CapabilityMissing("device reports no power rating to express watts as a percentage")
    return min(100.0, max(0.0, 100.0 * part_w / full_w))


def setpoint_targets(
    setpoints: Setpoints, blocks: Blocks, capabilities: frozenset[Capability], info: DeviceInfo
) -> list[PointTarget]:
    """The raw register values that express ``setpoints`` on models 123/124, in write order.

    Only setpoints within ``capabilities`` are mapped. Rates and timeouts come before the mode or
    enable point they qualify, so the device never acts on a half-written command.
    """
    targets: list[PointTarget] = []
    storage = blocks.get(124)
    controls = blocks.get(123)

    def put(block: ModelBlock, point: str, value: float) -> None:
        targets.append(PointTarget(block.model.id, point, block.raw_for(point, value)))

    if storage is not None and Capability.BACKUP_RESERVE in capabilities:
        put(storage, "MinRsvPct", setpoints.reserve_pct)
    if storage is not None and Capability.GRID_CHARGING in capabilities:
        put(storage, "ChaGriSet", 1 if setpoints.grid_charging else 0)
    if controls is not None and Capability.EXPORT_LIMIT in capabilities:
        if setpoints.export_limit_w is None:
            put(controls, "WMaxLim_Ena", 0)
        else:
            put(controls, "WMaxLimPct", _pct(setpoints.export_limit_w, info.nameplate_power_w))
            put(controls, "WMaxLim_Ena", 1)
    if storage is not None and Capability.BATTERY_POWER in capabilities:
        battery_w = setpoints.battery_w
        if battery_w is None:
            put(storage, "StorCtl_Mod", 0)
        else:
            if battery_w > 0:
                max_w = _coalesce(info.max_discharge_w, _num(storage, "WChaMax"))
                put(storage, "OutWRte", _pct(battery_w, max_w))
            else:
                put(storage, "InWRte", _pct(-battery_w, _num(storage, "WChaMax")))
            put(storage, "InOutWRte_RvrtTms", setpoints.revert_s)
            put(storage, "StorCtl_Mod", _STORCTL_DISCHARGE if battery_w > 0 else _STORCTL_CHARGE)
    return targets


def setpoints_from(blocks: Blocks, capabilities: frozenset[Capability], info: DeviceInfo) -> Setpoints:
    """The setpoints a device holds, read from models 123/124.

    Watts are rebuilt from percentages, so they carry the device's resolution (e.g. whole % of
    the rating). Setpoints the device cannot honour read as their neutral value.
    """
    storage = blocks.get(124)
    controls = blocks.get(123)
    reserve = _num(storage, "MinRsvPct") if Capability.BACKUP_RESERVE in capabilities else None
    grid_charging = _int(storage, "ChaGriSet") == 1 if Capability.GRID_CHARGING in capabilities else False
    export_limit_w: int | None = None
    if Capability.EXPORT_LIMIT in capabilities and _int(controls, "WMaxLim_Ena") == 1:
        pct = _num(controls, "WMaxLimPct") or 0.0
        export_limit_w = round(pct * (info.nameplate_power_w or 0.0) / 100)
    battery_w: int | None = None
    revert_s = 0
    mode = _int(storage, "StorCtl_Mod") if Capability.BATTERY_POWER in capabilities else None
    if mode:
        revert_s = _int(storage, "InOutWRte_RvrtTms") or 0
        if mode == _STORCTL_DISCHARGE:
            max_w = _coalesce(info.max_discharge_w, _num(storage, "WChaMax")) or 0.0
            battery_w = round((_num(storage, "OutWRte") or 0.0) * max_w / 100)
        elif mode == _STORCTL_CHARGE:
            battery_w = -round((_num(storage, "InWRte") or 0.0) * (_num(storage, "WChaMax") or 0.0) / 100)
        else:  # both bits: hold
            battery_w = 0
    return Setpoints(
        reserve_pct=round(reserve or 0.0),
        grid_charging=grid_charging,
        export_limit_w=export_limit_w,
        battery_w=battery_w,
        revert_s=revert_s,
    )


# --------------------------------------------------------------------------- driver


class SunSpecDriver:
    """A SunSpec inverter/battery/meter behind one Modbus TCP endpoint and unit id."""

    options_model: ClassVar[type[SunSpecOptions]] = SunSpecOptions

    def __init__(self, name: str, options: SunSpecOptions, transports: Transports) -> None:
        self.name = name
        self.options = options
        self.capabilities: frozenset[Capability] = frozenset()
        self.info: DeviceInfo | None = None
        self.map: SunSpecMap | None = None
        self._transports = transports
        self._endpoint: ModbusEndpoint | None = None
        # Models 123/124 as last read (discovery, poll, read-back): the scale factors and the
        # current raw values a command is computed from, so a command costs only its write(s)
        # and one read-back. None = unknown (after a failed command): read before writing.
        self._control: dict[int, ModelBlock] | None = None
        self._writes = 0  # writes sent, to tell a poll that straddled a write from a clean one
        self._log = structlog.get_logger("drivers.sunspec").bind(
            device=name, endpoint=f"{options.host}:{options.port}/{options.unit_id}"
        )

    async def connect(self) -> DeviceInfo:
        """Join the endpoint, discover the model chain and read identity and ratings.

        Raises:
            DeviceUnreachable: the device does not answer.
            ConfigurationError: no SunSpec map (or a broken one) at the configured unit/base.
        """
        endpoint = self._joined()
        bases = DEFAULT_BASE_ADDRESSES if self.options.base_address is None else (self.options.base_address,)
        state: Discovery | SunSpecMap = start_discovery(bases)
        while isinstance(state, Discovery):
            request = state.request
            try:
                registers: list[int] | None = await endpoint.read_holding(
                    self.options.unit_id,
                    request.address,
                    request.count,
                    timeout_s=self.options.timeout_s,
                )
            except DeviceRejected:
                registers = None
            state = discovery_step(state, registers)
        if state.find(1) is None:
            raise ConfigurationError(f"{self.name}: SunSpec map has no common model 1")
        blocks = await self._read_blocks(state, _IDENTITY_MODELS, Priority.POLL)
        self.map = state
        self._remember(blocks)
        self.info = device_info_from(blocks)
        self.capabilities = capabilities_from(blocks, storm_alert=self.options.storm_alert)
        self._log.info(
            "sunspec.connected",
            models=list(state.model_ids),
            base=state.base_address,
            capabilities=sorted(self.capabilities),
        )
        return self.info

    async def close(self) -> None:
        """Release this driver's share of the endpoint."""
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            await self._transports.modbus.release(endpoint)

    async def read(self) -> DeviceTelemetry:
        """Read inverter, storage, battery and meter models once (one FC3 read per model)."""
        sunspec_map = await self._mapped()
        writes = self._writes
        blocks = await self._read_blocks(sunspec_map, _TELEMETRY_MODELS, Priority.POLL)
        if writes == self._writes:  # a poll that straddled a command's write is half old
            self._remember(blocks)
        telemetry = telemetry_from(
            blocks,
            now=datetime.now(UTC),
            battery_sign=self.options.battery_sign,
            meter_sign=self.options.meter_sign,
            capacity_wh=self.info.battery_capacity_wh if self.info else None,
            storm_alert=self.options.storm_alert,
        )
        if self.info is None or not self.capabilities & SETPOINT_CAPABILITIES:
            return telemetry
        return replace(telemetry, held=setpoints_from(blocks, self.capabilities, self.info))

    async def apply(self, setpoints: Setpoints) -> None:
        """Write the setpoints this device supports, then read back until the device holds them.

        A command costs its write(s) and one read-back: the raw values are computed with the
        scale factors cached from discovery, and a point is skipped when the last reading of
        models 123/124 (discovery, poll or read-back) already shows its value, except a battery
        command's revert timeout: writing it restarts the device's revert timer, which is how a
        re-sent command is kept alive. The last reading may be stale (someone else's write, a
        reboot the transport hid), so the read-back is the judge: a skipped point it shows wrong
        is written then, not waited for. After a failed command the cache is dropped and the
        next command reads first. Commands go ahead of queued polls. Setpoints outside
        ``capabilities`` are ignored.

        Raises:
            NotConfirmed: the read-back does not match within ``confirm_timeout_s``.
            DeviceRejected: the device refused a write (Modbus exception code in ``code``).
            DeviceUnreachable: the device does not answer.
        """
        sunspec_map = await self._mapped()
        assert self.info is not None  # noqa: S101 - set by _mapped()
        known = self._control
        if known is None:
            known = await self._read_blocks(sunspec_map, _CONTROL_MODELS, Priority.COMMAND)
        targets = setpoint_targets(setpoints, known, self.capabilities, self.info)
        # From the first write until the read-back confirms, the device's state is not known:
        # a command that fails leaves it unknown, and the next one reads first.
        self._control = None
        self._writes += 1
        written = await self._write_changed(known, targets, frozenset())
        await self._confirm(sunspec_map, setpoints, targets, written)

    async def read_back(self) -> Setpoints:
        """The setpoints as the device holds them now (watts at the device's resolution)."""
        sunspec_map = await self._mapped()
        assert self.info is not None  # noqa: S101 - set by _mapped()
        writes = self._writes
        blocks = await self._read_blocks(sunspec_map, _CONTROL_MODELS, Priority.COMMAND)
        if writes == self._writes:
            self._remember(blocks)
        return setpoints_from(blocks, self.capabilities, self.info)

    async def _write_changed(
        self, blocks: Blocks, targets: list[PointTarget], done: frozenset[str]
    ) -> frozenset[str]:
        """Write, in order, each target not in ``done`` whose point ``blocks`` show otherwise.

        Returns ``done`` plus the points written.
        """
        endpoint = self._joined()
        written = set(done)
        for target in targets:
            block = blocks[target.model_id]
            if target.point in done or (
                block.raw(target.point) == target.raw and target.point != _REVERT_POINT
            ):
                continue
            write = block.encode_raw(target.point, target.raw)
            await endpoint.write(
                self.options.unit_id,
                write.address,
                write.values,
                priority=Priority.COMMAND,
                timeout_s=self.options.timeout_s,
            )
            written.add(target.point)
        return frozenset(written)

    async def _confirm(
        self,
        sunspec_map: SunSpecMap,
        setpoints: Setpoints,
        targets: list[PointTarget],
        written: frozenset[str],
    ) -> None:
        assert self.info is not None  # noqa: S101 - apply() checked it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.confirm_timeout_s
        pause = 0.02
        while True:
            blocks = await self._read_blocks(sunspec_map, _CONTROL_MODELS, Priority.COMMAND)
            fresh = setpoint_targets(setpoints, blocks, self.capabilities, self.info)
            expected = {t.point: t.raw for t in fresh}
            actual = {t.point: blocks[t.model_id].raw(t.point) for t in fresh}
            if actual == expected:
                self._remember(blocks)
                return
            # A point skipped on a stale reading, or one whose raw value moved with its scale
            # factor, is written now and read back at once; a written one is waited for.
            moved = {t.point for t in fresh if t not in targets}
            kept = written - moved
            written = await self._write_changed(blocks, fresh, kept)
            wrote_more = written != kept
            targets = fresh
            if loop.time() + (0 if wrote_more else pause) > deadline:
                raise NotConfirmed(
                    f"{self.name}: device holds {actual}, expected {expected}",
                    expected=expected,
                    actual=actual,
                )
            if not wrote_more:
                await asyncio.sleep(pause)  # the device applies writes on its own schedule
                pause = min(pause * 2, 0.25)

    def _remember(self, blocks: Mapping[int, ModelBlock]) -> None:
        """Keep models 123/124 of a complete reading as the state commands start from."""
        assert self.map is not None  # noqa: S101 - called with a map in hand
        present = {m for m in _CONTROL_MODELS if self.map.find(m) is not None}
        if present <= blocks.keys():
            self._control = {m: blocks[m] for m in present}

    def _joined(self) -> ModbusEndpoint:
        if self._endpoint is None:
            self._endpoint = self._transports.modbus.acquire(self.options.host, self.options.port)
        return self._endpoint

    async def _mapped(self) -> SunSpecMap:
        if self.map is None:
            await self.connect()
        assert self.map is not None  # noqa: S101 - connect() sets it or raises
        return self.map

    async def _read_blocks(
        self, sunspec_map: SunSpecMap, model_ids: tuple[int, ...], priority: Priority
    ) -> dict[int, ModelBlock]:
        endpoint = self._joined()
        wanted: dict[int, ModelLocation] = {}
        for location in sunspec_map.models:
            if location.model_id in model_ids and location.model_id not in wanted:
                wanted[location.model_id] = location
        spans, large = plan_reads(list(wanted.values()))
        fetched: list[tuple[ModelLocation, list[int]]] = []
        for span in spans:
            registers = await endpoint.read_holding(
                self.options.unit_id, span.address, span.count,
                priority=priority, timeout_s=self.options.timeout_s,
            )
            fetched.extend((loc, span.slice(registers, loc)) for loc in span.models)
        for location in large:
            registers = []
            for request in location.requests():
                registers += await endpoint.read_holding(
                    self.options.unit_id, request.address, request.count,
                    priority=priority, timeout_s=self.options.timeout_s,
                )
            fetched.append((location, registers))
        blocks: dict[int, ModelBlock] = {}
        for location, registers in fetched:
            if registers[:1] != [location.model_id]:
                # The map moved under us (firmware update, another device on the port):
                # forget it, so the next call discovers the chain afresh.
                self.map = None
                self._control = None
                raise DeviceUnreachable(
                    f"{self.name}: model {location.model_id} no longer at {location.address}"
                )
            blocks[location.model_id] = decode_model(
                model_def(location.model_id), location.address, registers
            )
        return blocks
