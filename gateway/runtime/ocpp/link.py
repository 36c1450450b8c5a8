"""One charge point's OCPP 1.6J link: the calls it makes handled, the calls the gateway makes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Protocol

import structlog
from ocpp.exceptions import OCPPError
from ocpp.messages import MessageType, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    RegistrationStatus,
)

from gateway.core.charging.sessions import meter_samples, parse_timestamp
from gateway.runtime.clock import Clock
from gateway.runtime.ocpp.state import ChargerState
from gateway.runtime.storage.charging import ChargeStore

log = structlog.get_logger("gateway.runtime.ocpp")
#: The ocpp library logs every frame at INFO: only when this logger is set lower (frames may
#: carry id tags). The central system logs what matters as its own ``ocpp.*`` events.
FRAMES = logging.getLogger("gateway.runtime.ocpp.frames")
FRAMES.setLevel(logging.WARNING)
#: A sample stamped further back than this (after correcting the charge point's clock) is a
#: replayed queue entry: it counts for sessions, not for the live power.
LIVE_WINDOW_S = 120.0
_MAX_ID_CHARS = 36  # OCPP-J unique ids are at most 36 characters
#: The ocpp library names some errors as OCPP 2.0 does; OCPP-J 1.6 (section 4.2.3) spells them so.
_V16_CODES = {"FormatViolation": "FormationViolation",
              "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}


class Connection(Protocol):
    """What the ocpp library reads and writes: text frames."""

    async def recv(self) -> str: ...

    async def send(self, message: str) -> None: ...


def _unique_id(raw: str) -> str:
    """The unique id of a frame that could not be parsed, or "-1" when it has none."""
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return "-1"
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str):
        return frame[1][:_MAX_ID_CHARS]
    return "-1"


def _shape_problem(msg: Any) -> tuple[str, str] | None:
    """What makes an unpacked frame unusable: (error code, why), or None."""
    if not isinstance(msg.unique_id, str) or len(msg.unique_id) > _MAX_ID_CHARS:
        return "ProtocolError", "UniqueId must be a string of at most 36 characters"
    if msg.message_type_id == MessageType.Call:
        if not isinstance(msg.action, str):
            return "ProtocolError", "Action must be a string"
        if not isinstance(msg.payload, dict):
            return "FormationViolation", "Payload must be a JSON object"
    return None


class ChargerLink(ChargePoint):
    """The central system's side of one connected charge point (a ``ocpp.v16.ChargePoint``)."""

    def __init__(self, state: ChargerState, connection: Connection, store: ChargeStore,
                 clock: Clock, *, heartbeat_s: int, response_timeout_s: float = 10.0) -> None:
        super().__init__(state.id, connection, response_timeout=response_timeout_s,
                         logger=FRAMES)
        self.state = state
        self._store = store
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._log = log.bind(site_id=state.site_id, charge_point_id=state.id)
        self.booted = asyncio.Event()  # set by the first BootNotification on this link

    # ---- frames ---------------------------------------------------------------------------

    async def route_message(self, raw_msg: str) -> None:
        """Answer a frame that is not OCPP-J with the CallError the standard names (the library
        only logs those), and keep one bad message from ending the link."""
        self.state.last_seen = self._clock()
        msg: Any = None
        try:
            msg = unpack(raw_msg)
            problem = _shape_problem(msg)
        except OCPPError as exc:
            problem = (exc.code, str(exc.description))
        except RecursionError:  # nested deeper than the JSON decoder goes
            problem = ("FormationViolation", "Message is nested too deeply")
        if problem is not None or msg is None:
            problem = problem or ("ProtocolError", "not an OCPP-J message")
            self._log.warning("ocpp.malformed_frame", code=problem[0], detail=problem[1],
                              frame=raw_msg[:200])
            await self._send(json.dumps([4, _unique_id(raw_msg), *problem, {}]))
            return
        if msg.message_type_id != MessageType.Call and not self._call_lock.locked():
            # an answer to no call of ours: dropped (kept, it would pile up in the library's queue)
            self._log.warning("ocpp.unexpected_answer", frame=raw_msg[:200])
            return
        if msg.message_type_id == MessageType.Call and msg.action not in self.route_map:
            # OCPP-J 1.6 section 4.2.3: NotImplemented = not known, NotSupported = known but not
            # handled (the library answers the other way round)
            known = msg.action in {a.value for a in Action}
            code, why = (("NotSupported", "recognised but not supported by this central system")
                         if known else ("NotImplemented", "not known by this central system"))
            self._log.warning("ocpp.unhandled_action", action=str(msg.action)[:64], code=code)
            await self._send(json.dumps([4, msg.unique_id, code, f"{msg.action}: {why}", {}]))
            return
        try:
            await super().route_message(raw_msg)
        except (ConnectionError, OSError):
            raise
        except Exception as exc:  # a bug in one handler must not end every charge point's link
            self._log.exception("ocpp.message_failed", error=repr(exc))

    async def _send(self, message: str) -> None:
        """Send a frame; a CallError carries the OCPP 1.6 spelling of its code."""
        if message.startswith("[4"):
            frame = json.loads(message)
            if len(frame) > 2 and frame[2] in _V16_CODES:
                frame[2] = _V16_CODES[frame[2]]
                message = json.dumps(frame)
            self._log.warning("ocpp.call_error_sent", code=frame[2] if len(frame) > 2 else None,
                              detail=str(frame[3])[:200] if len(frame) > 3 else None)
        await super()._send(message)

    # ---- calls from the charge point ------------------------------------------------------

    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str,
                **extra: Any) -> call_result.BootNotification:
        self.state.boot = {
            "vendor": charge_point_vendor, "model": charge_point_model,
            "serial": str(extra.get("charge_point_serial_number") or ""),
            "firmware": str(extra.get("firmware_version") or ""),
        }
        self.booted.set()
        self._log.info("ocpp.boot", vendor=charge_point_vendor, model=charge_point_model)
        return call_result.BootNotification(
            current_time=self._now_text(), interval=self._heartbeat_s,
            status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=self._now_text())

    @on(Action.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str,
                  **extra: Any) -> call_result.StatusNotification:
        self._seen(extra.get("timestamp"))
        targets = (self.state.connectors.values() if connector_id == 0
                   else [self.state.connectors[connector_id]]
                   if connector_id in self.state.connectors else [])
        if not targets:
            self._log.warning("ocpp.unknown_connector", connector_id=connector_id)
        for connector in targets:
            if connector_id != 0 or status in ("Unavailable", "Faulted"):
                connector.status = status
                connector.error_code = error_code
            if status not in ("Charging", "SuspendedEV", "SuspendedEVSE"):
                connector.power_w = 0.0
        self._log.info("ocpp.status", connector_id=connector_id, status=status,
                       error_code=error_code)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info={"status": self._authorised(id_tag)})

    @on(Action.start_transaction)
    async def on_start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                       **extra: Any) -> call_result.StartTransaction:
        received = self._clock()
        stamped = parse_timestamp(timestamp) or received
        self.state.clock.seen(stamped, received)
        started = self.state.clock.corrected(stamped, received)
        tx_id, new = await self._store.start(
            site_id=self.state.site_id, charge_point_id=self.state.id, connector_id=connector_id,
            id_tag=id_tag, stamped_start=timestamp, started_at=started,
            meter_start_wh=float(meter_start))
        status = self._authorised(id_tag)
        connector = self.state.connectors.get(connector_id)
        if connector is not None:
            connector.transaction_id = tx_id
            connector.limit_a = None
            connector.energy_wh = float(meter_start)
            connector.energy_at = None
        self._log.info("ocpp.transaction_started" if new else "ocpp.transaction_replayed",
                       transaction_id=tx_id, connector_id=connector_id, authorised=status)
        return call_result.StartTransaction(transaction_id=tx_id,
                                            id_tag_info={"status": status})

    @on(Action.stop_transaction)
    async def on_stop(self, meter_stop: int, timestamp: str, transaction_id: int,
                      **extra: Any) -> call_result.StopTransaction:
        received = self._clock()
        stamped = parse_timestamp(timestamp) or received
        self.state.clock.seen(stamped, received)
        outcome = await self._store.stop(
            charge_point_id=self.state.id, transaction_id=transaction_id,
            stopped_at=self.state.clock.corrected(stamped, received),
            meter_stop_wh=float(meter_stop), reason=str(extra.get("reason") or "Local"))
        for connector in self.state.connectors.values():
            if connector.transaction_id == transaction_id:
                connector.transaction_id = None
                connector.limit_a = None
                connector.power_w = 0.0
        if not outcome.known:
            self._log.warning("ocpp.stop_unknown_transaction", transaction_id=transaction_id)
        else:
            self._log.info("ocpp.transaction_stopped" if outcome.counted
                           else "ocpp.stop_replayed", transaction_id=transaction_id,
                           meter_stop_wh=meter_stop)
        id_tag = extra.get("id_tag")
        if isinstance(id_tag, str):
            return call_result.StopTransaction(id_tag_info={"status": self._authorised(id_tag)})
        return call_result.StopTransaction()

    # ---- meter -----------------------------------------------------------------------------

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[Any],
                        **extra: Any) -> call_result.MeterValues:
        received = self._clock()
        samples, skipped = meter_samples(meter_value)
        if skipped:
            self._log.warning("ocpp.meter_values_skipped", skipped=skipped)
        connector = self.state.connectors.get(connector_id)
        for sample in sorted(samples, key=lambda s: s.stamped):
            self.state.clock.seen(sample.stamped, received)
            if connector is None:
                continue
            at = self.state.clock.corrected(sample.stamped, received)
            if (received - at).total_seconds() > LIVE_WINDOW_S:
                continue  # a replayed sample: history, not the present
            power = sample.power_w
            if power is None and sample.energy_wh is not None and connector.energy_at is not None \
                    and connector.energy_wh is not None:
                # a charger that reports only its register: the power between two samples
                span_s = (at - connector.energy_at).total_seconds()
                if span_s >= 1:
                    power = (sample.energy_wh - connector.energy_wh) * 3600 / span_s
            if power is not None:
                connector.power_w = max(power, 0.0)
                connector.power_at = time.monotonic()
            if sample.energy_wh is not None:
                connector.energy_wh = sample.energy_wh
                connector.energy_at = at
            if sample.soc_pct is not None:
                connector.soc_pct = sample.soc_pct
        return call_result.MeterValues()

    # ---- calls to the charge point --------------------------------------------------------

    async def set_profile(self, connector_id: int, limit_a: float, *, purpose: str,
                          transaction_id: int | None = None, duration_s: int | None = None,
                          phases: int | None = None) -> bool:
        """SetChargingProfile with one current limit (A); True when the charge point accepted."""
        profile: dict[str, Any] = {
            "chargingProfileId": 1 if purpose == "TxDefaultProfile" else 2,
            "stackLevel": 0,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Relative" if transaction_id is None else "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(limit_a, 1),
                                            **({"numberPhases": phases} if phases else {})}],
            },
        }
        if transaction_id is not None:
            profile["transactionId"] = transaction_id
            profile["chargingSchedule"]["startSchedule"] = self._now_text()
        if duration_s is not None:
            profile["chargingSchedule"]["duration"] = duration_s
        answer = await self.call(call.SetChargingProfile(
            connector_id=connector_id, cs_charging_profiles=profile))
        accepted = answer is not None and answer.status == "Accepted"
        self._log.info("ocpp.profile_set", connector_id=connector_id, purpose=purpose,
                       limit_a=round(limit_a, 1), accepted=accepted)
        return accepted

    async def remote_start(self, id_tag: str, connector_id: int | None = None) -> bool:
        """RemoteStartTransaction; True when accepted."""
        answer = await self.call(call.RemoteStartTransaction(id_tag=id_tag,
                                                             connector_id=connector_id))
        return answer is not None and answer.status == "Accepted"

    async def remote_stop(self, transaction_id: int) -> bool:
        """RemoteStopTransaction; True when accepted."""
        answer = await self.call(call.RemoteStopTransaction(transaction_id=transaction_id))
        return answer is not None and answer.status == "Accepted"

    # ---- helpers --------------------------------------------------------------------------

    def _authorised(self, id_tag: str) -> str:
        cfg = self.state.config
        if cfg.authorize == "accept_all" or id_tag in cfg.id_tags:
            return str(AuthorizationStatus.accepted)
        return str(AuthorizationStatus.invalid)

    def _seen(self, timestamp: object) -> None:
        stamped = parse_timestamp(timestamp)
        if stamped is not None:
            self.state.clock.seen(stamped, self._clock())

    def _now_text(self) -> str:
        return self._clock().isoformat().replace("+00:00", "Z")

