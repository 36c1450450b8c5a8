"""The simulated charger's connector states, profiles and queue (sans-IO), and the session store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.runtime.storage import Storage
from gateway.runtime.storage.charging import ChargeStore, StopOutcome
from simulator.config import OcppChargerConfig
from simulator.devices.ev_charger import QUEUE_MAX, EvCharger

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def charger(**overrides: object) -> EvCharger:
    config = OcppChargerConfig.model_validate({"id": "c", "kind": "ocpp_charger",
                                               "car_battery_wh": 10000, "car_soc_pct": 50,
                                               **overrides})
    return EvCharger(config, T0)


def actions(c: EvCharger) -> list[tuple[str, str | None]]:
    return [(m.action, m.payload.get("status")) for m in c.outbox]


def test_plug_authorise_charge_full_unplug_walks_the_connector_states() -> None:
    c = charger()
    c.plug(True)
    assert c.status == "Preparing"
    assert c.power_w == 0
    c.authorize("TAG")
    assert c.status == "Charging"
    assert c.power_w == 11000  # 16 A x 3 x 230 V = 11040, the car takes 11 kW at most
    c.confirm_start(1, 77)
    c.advance(1800)
    assert c.energy_wh == pytest.approx(5500)
    assert c.car_soc_pct == 100  # 50 % of 10 kWh is 5 kWh: full before the half hour ended
    assert c.status == "SuspendedEV"
    c.plug(False)
    assert actions(c) == [
        ("StatusNotification", "Preparing"), ("StartTransaction", None),
        ("StatusNotification", "Charging"), ("StatusNotification", "SuspendedEV"),
        ("StopTransaction", None), ("StatusNotification", "Finishing"),
        ("StatusNotification", "Available")]
    stop = next(m for m in c.outbox if m.action == "StopTransaction")
    assert (stop.payload["meterStop"], stop.payload["reason"]) == (5500, "EVDisconnected")


@pytest.mark.parametrize(("purpose", "limit", "status", "power"), [
    ("TxDefaultProfile", 10.0, "Charging", 6900.0),
    ("TxDefaultProfile", 0.0, "SuspendedEVSE", 0.0),
    ("TxProfile", 8.0, "Charging", 5520.0),
    ("TxProfile", 5.0, "SuspendedEVSE", 0.0),  # under 6 A a car does not charge
])
def test_profiles_limit_the_current(purpose: str, limit: float, status: str,
                                    power: float) -> None:
    c = charger(auto_authorize=True)
    c.plug(True)
    c.confirm_start(1, 5)
    assert c.set_profile(purpose, limit, None, 5)
    assert (c.status, c.power_w) == (status, power)


def test_a_tx_profile_lapses_to_the_default_after_its_duration() -> None:
    c = charger(auto_authorize=True)
    c.plug(True)
    c.confirm_start(1, 5)
    c.set_profile("TxDefaultProfile", 6, None, None)
    c.set_profile("TxProfile", 16, 300, 5)
    assert c.limit_a == 16
    c.advance(299)
    assert c.limit_a == 16
    c.advance(2)
    assert c.limit_a == 6


def test_a_tx_profile_for_another_transaction_is_rejected() -> None:
    c = charger(auto_authorize=True)
    assert not c.set_profile("TxProfile", 8, None, None)  # no transaction yet
    c.plug(True)
    c.confirm_start(1, 5)
    assert not c.set_profile("TxProfile", 8, None, 6)
    assert not c.set_profile("ChargePointMaxProfile", 8, None, None)


def test_remote_stop_and_clock_skew_and_a_full_queue() -> None:
    c = charger(auto_authorize=True)
    c.clock_skew_s = 3600
    c.plug(True)
    start = next(m for m in c.outbox if m.action == "StartTransaction")
    assert start.payload["timestamp"] == (T0 + timedelta(hours=1)).isoformat().replace(
        "+00:00", "Z")
    assert not c.remote_stop(5)  # not confirmed yet: no such transaction
    c.confirm_start(1, 5)
    assert c.remote_stop(5)
    assert c.status == "Finishing"
    c.plug(False)
    c.plug(True)  # a second transaction, never confirmed: the link is down for good
    for _ in range(QUEUE_MAX + 10):
        c.meter_values()
    assert len(c.outbox) == QUEUE_MAX  # bounded: the oldest are dropped and counted
    assert c.dropped > 10


async def test_the_store_counts_a_replayed_start_and_stop_once(tmp_path: Path) -> None:
    async with Storage.in_data_dir(tmp_path) as storage:
        store = ChargeStore(storage)
        args = {"site_id": 1001, "charge_point_id": "CP", "connector_id": 1, "id_tag": "T",
                "stamped_start": "2026-06-01T12:00:00Z", "started_at": T0,
                "meter_start_wh": 1000.0}
        first, new = await store.start(**args)  # type: ignore[arg-type]
        again, new_again = await store.start(**args)  # type: ignore[arg-type]
        assert (first, new, again, new_again) == (first, True, first, False)
        assert [t.id for t in await store.open_transactions("CP")] == [first]
        stop = {"charge_point_id": "CP", "transaction_id": first,
                "stopped_at": T0 + timedelta(hours=1), "meter_stop_wh": 4000.0,
                "reason": "Local"}
        assert await store.stop(**stop) == StopOutcome(known=True, counted=True)  # type: ignore[arg-type]
        assert await store.stop(**stop) == StopOutcome(known=True, counted=False)  # type: ignore[arg-type]
        assert await store.stop(**{**stop, "transaction_id": 999}) == StopOutcome(False, False)  # type: ignore[arg-type]
        assert await store.stop(**{**stop, "charge_point_id": "OTHER"}) == StopOutcome(False, False)  # type: ignore[arg-type]
        sessions = await store.sessions(1001, None, None, limit=10)
        assert [(s.start, s.duration_s, s.energy_wh) for s in sessions] == [(T0, 3600.0, 3000.0)]
        assert await store.sessions(1001, T0 + timedelta(seconds=1), None, limit=10) == []
        assert await store.sessions(1002, None, None, limit=10) == []
        assert await store.open_transactions("CP") == []
