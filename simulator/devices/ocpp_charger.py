"""A simulated OCPP 1.6J charge point: its own OCPP-J framing over an aiohttp WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import aiohttp
import structlog

from simulator.config import HomeConfig, OcppChargerConfig
from simulator.devices.ev_charger import EvCharger, Outgoing
from simulator.physics import HomePhysics

log = structlog.get_logger(__name__)

#: Real seconds between connection attempts: short first, then capped.
RECONNECT_DELAYS_S: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0)
CALL_TIMEOUT_S = 10.0
_TICK_S = 0.05  # real seconds between looks at what the charger owes the central system


class _CallFailed(Exception):
    """The central system answered a call with a CallError (or not at all)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


#: OCPP 1.6 TransactionMessageAttempts / RetryInterval: a transaction message the central system
#: failed to process (InternalError) is tried this many times, this many real seconds apart.
TRANSACTION_ATTEMPTS = 3
RETRY_INTERVAL_S = 1.0


class _Charge:
    """The charger's view of the physics: the home draws its power, time moves its meter."""

    def __init__(self, charger: EvCharger) -> None:
        self._charger = charger

    @property
    def power_w(self) -> float:
        return self._charger.power_w

    def advance(self, dt_s: float) -> None:
        self._charger.advance(dt_s)


class OcppChargerDevice:
    """An EV charger that dials the central system and keeps dialling (real chargers do).

    Transaction messages (Start/StopTransaction, their MeterValues) wait in the charger's queue
    while the link is down and are sent in order after the next BootNotification; status
    notifications of the past are not replayed, the current one is sent instead. Faults:
    ``offline`` (drop the link and stay away), ``clock_skew_s`` (the charger's clock runs off and
    ignores the central system's time), ``meter_gap`` (no MeterValues while set).
    """

    kind = "ocpp_charger"

    def __init__(self, home: HomeConfig, config: OcppChargerConfig, physics: HomePhysics) -> None:
        del home
        self.id = config.id
        self.config = config
        self.host = config.host
        self.port = config.port
        self.unit_id = 0
        self.physics = physics
        self.charger = EvCharger(config, physics.at)
        physics.extra_loads.append(_Charge(self.charger))
        self.offline = False
        self.meter_gap = False
        self.connected = False
        self.boots = 0
        self.errors_received: list[list[Any]] = []  # CallErrors the central system answered
        self._task: asyncio.Task[None] | None = None
        self._online = asyncio.Event()
        self._online.set()
        self._drop = asyncio.Event()
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._send_lock = asyncio.Lock()
        self._central_url = config.central_url

    @property
    def url(self) -> str:
        """Where the charger connects: the central system's URL and its id."""
        return f"{self._central_url.rstrip('/')}/{self.config.charge_point_id}"

    def retarget(self, central_url: str) -> None:
        """Dial another central system from now on (tests: one on an ephemeral port)."""
        self._central_url = central_url
        self._drop.set()

    async def start(self) -> None:
        """Start dialling the central system."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ocpp-charger-{self.id}")

    async def stop(self) -> None:
        """Hang up and stop."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- control API ----------------------------------------------------------------------

    def changed(self) -> None:
        """The charger's power may have changed: the home's truth shows it at once."""
        self.physics.loads_changed()

    def set_offline(self, offline: bool) -> None:
        """Cut the link and stay away (True), or dial again (False)."""
        self.offline = offline
        if offline:
            self._online.clear()
            self._drop.set()
        else:
            self._online.set()

    # ---- the link -------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        headers = ({"Authorization": aiohttp.encode_basic_auth(self.config.charge_point_id,
                                                              self.config.password)}
                   if self.config.password else {})
        async with aiohttp.ClientSession() as session:
            while True:
                await self._online.wait()
                self._drop.clear()
                try:
                    async with session.ws_connect(self.url, protocols=("ocpp1.6",), headers=headers,
                                                  heartbeat=None, autoping=True) as ws:
                        attempt = 0
                        self.connected = True
                        log.info("ocpp charger connected", device=self.id, url=self.url)
                        await self._session(ws)
                except (aiohttp.ClientError, OSError, TimeoutError, _CallFailed) as exc:
                    log.info("ocpp charger link down", device=self.id, error=repr(exc))
                finally:
                    self.connected = False
                    for future in self._pending.values():
                        future.cancel()
                    self._pending.clear()
                delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
                attempt += 1
                await asyncio.sleep(delay)

    async def _session(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        tasks = [asyncio.create_task(self._read(ws)), asyncio.create_task(self._talk(ws)),
                 asyncio.create_task(self._drop.wait())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise _CallFailed(repr(task.exception()))

    async def _talk(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        charger = self.charger
        boot = await self._call(ws, "BootNotification", {
            "chargePointVendor": "SimCo", "chargePointModel": "SimWallbox 11",
            "chargePointSerialNumber": self.config.charge_point_id, "firmwareVersion": "1.0.0"})
        self.boots += 1
        interval = float(boot.get("interval") or 60)
        # what happened while away: only the present status, not every change in between
        kept = [m for m in charger.outbox if m.transactional]
        charger.outbox.clear()
        charger.outbox.extend(kept)
        await self._call(ws, "StatusNotification", {
            "connectorId": 1, "errorCode": "NoError", "status": charger.status,
            "timestamp": charger.stamp()})
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + interval
        next_meter = loop.time() + self.config.meter_interval_s
        while True:
            if charger.outbox:
                await self._deliver(ws, charger.outbox[0])
                charger.outbox.popleft()
                continue
            now = loop.time()
            if now >= next_meter:
                next_meter = now + self.config.meter_interval_s
                if not self.meter_gap:
                    charger.meter_values()
                    continue
            if now >= next_beat:
                next_beat = now + interval
                await self._call(ws, "Heartbeat", {})
            await asyncio.sleep(_TICK_S)

    async def _deliver(self, ws: aiohttp.ClientWebSocketResponse, message: Outgoing) -> None:
        charger = self.charger
        payload = dict(message.payload)
        if message.local_tx is not None and message.action != "StartTransaction":
            tx_id = charger.tx_ids.get(message.local_tx)
            if tx_id is None:  # its StartTransaction was never answered: nothing to refer to
                return
            payload["transactionId"] = tx_id
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                answer = await self._call(ws, message.action, payload)
                break
            except _CallFailed as exc:
                log.warning("ocpp charger message refused", device=self.id,
                            action=message.action, error=str(exc), attempt=attempt)
                # the central system's own failure may pass; a refusal of the message would not
                if exc.code != "InternalError" or attempt == TRANSACTION_ATTEMPTS:
                    return
                await asyncio.sleep(RETRY_INTERVAL_S)
        else:
            return
        if message.action == "StartTransaction" and message.local_tx is not None:
            info = answer.get("idTagInfo")
            status = info.get("status") if isinstance(info, dict) else None
            charger.confirm_start(message.local_tx, int(answer["transactionId"]),
                                  accepted=status == "Accepted")
            self.changed()

    async def _call(self, ws: aiohttp.ClientWebSocketResponse, action: str,
                    payload: dict[str, Any]) -> dict[str, Any]:
        unique_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = future
        try:
            await self._send(ws, [2, unique_id, action, payload])
            async with asyncio.timeout(CALL_TIMEOUT_S):
                answer = await future
        finally:
            self._pending.pop(unique_id, None)
        if not isinstance(answer, dict):
            code = str(answer[2]) if isinstance(answer, list) and len(answer) > 2 else ""
            raise _CallFailed(f"{action}: {answer!r}", code)
        return answer

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, frame: list[Any]) -> None:
        async with self._send_lock:
            await ws.send_str(json.dumps(frame))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            try:
                frame = json.loads(msg.data)
            except ValueError:
                continue
            if not isinstance(frame, list) or len(frame) < 3:
                continue
            kind, unique_id = frame[0], str(frame[1])
            if kind == 3:
                future = self._pending.get(unique_id)
                if future is not None and not future.done():
                    future.set_result(frame[2])
            elif kind == 4:
                self.errors_received.append(frame)
                future = self._pending.get(unique_id)
                if future is not None and not future.done():
                    future.set_result(frame)
                elif len(self.errors_received) > 100:
                    del self.errors_received[:50]
            elif kind == 2 and len(frame) >= 4:
                await self._send(ws, self._answer(unique_id, str(frame[2]), frame[3]))

    def _answer(self, unique_id: str, action: str, payload: Any) -> list[Any]:
        """The reply to a call from the central system."""
        charger = self.charger
        if not isinstance(payload, dict):
            return [4, unique_id, "FormationViolation", "payload is not an object", {}]
        try:
            if action == "SetChargingProfile":
                profile = payload["csChargingProfiles"]
                schedule = profile["chargingSchedule"]
                if schedule.get("chargingRateUnit", "A") == "W":
                    limit = float(schedule["chargingSchedulePeriod"][0]["limit"]) / (
                        self.config.phases * self.config.voltage_v)
                else:
                    limit = float(schedule["chargingSchedulePeriod"][0]["limit"])
                duration = schedule.get("duration")
                ok = charger.set_profile(profile["chargingProfilePurpose"], limit,
                                         None if duration is None else float(duration),
                                         profile.get("transactionId"))
                self.changed()
                return [3, unique_id, {"status": "Accepted" if ok else "Rejected"}]
            if action == "RemoteStartTransaction":
                charger.authorize(str(payload["idTag"]))
                self.changed()
                return [3, unique_id, {"status": "Accepted"}]
            if action == "RemoteStopTransaction":
                ok = charger.remote_stop(int(payload["transactionId"]))
                self.changed()
                return [3, unique_id, {"status": "Accepted" if ok else "Rejected"}]
            if action == "ClearChargingProfile":
                charger.tx_profile = None
                return [3, unique_id, {"status": "Accepted"}]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            return [4, unique_id, "FormationViolation", f"bad {action}: {exc!r}", {}]
        return [4, unique_id, "NotImplemented", f"{action} is not implemented", {}]
