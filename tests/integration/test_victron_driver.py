"""The Victron GX MQTT driver against the simulated GX on its own embedded broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest
import pytest_asyncio

from drivers.base import Capability, Setpoints
from drivers.errors import DeviceUnreachable, NotConfirmed
from drivers.transport import MqttPool, Transports
from drivers.victron_gx.codec import PROBE_PATH
from drivers.victron_gx.driver import VictronGxDriver
from drivers.victron_gx.options import VictronGxOptions
from simulator import HomeConfig, Simulator, SimulatorConfig, VictronGxConfig
from tests.helpers import eventually

NOON = datetime(2026, 6, 21, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
PORTAL = "c0619ab1f00d"
MIN_SOC = "settings/0/Settings/CGwacs/BatteryLife/MinimumSocLimit"
MAX_FEED_IN = "settings/0/Settings/CGwacs/MaxFeedInPower"
PREVENT_FEEDBACK = "settings/0/Settings/CGwacs/PreventFeedback"
DISABLE_CHARGE = "vebus/227/Hub4/DisableCharge"
DISABLE_FEED_IN = "vebus/227/Hub4/DisableFeedIn"
SIM_STORM = "platform/0/StormAlert"


@dataclass
class Probe:
    """A plain aiomqtt client on the GX's broker recording N/ values and W/ requests."""

    client: aiomqtt.Client
    seen: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def values(self, path: str) -> list[Any]:
        topic = f"N/{PORTAL}/{path}"
        return [json.loads(p)["value"] for t, p, _ in self.seen if t == topic and p]

    def writes(self) -> list[tuple[str, Any, bool]]:
        return [(t.removeprefix(f"W/{PORTAL}/"), json.loads(p)["value"], r)
                for t, p, r in self.seen if t.startswith("W/")]  # fmt: skip


@asynccontextmanager
async def probe(port: int) -> AsyncIterator[Probe]:
    filters = (f"N/{PORTAL}/#", f"W/{PORTAL}/#")
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        p = Probe(client)
        for f in filters:
            await client.subscribe(f, qos=1)

        async def read() -> None:
            async for m in client.messages:
                if any(m.topic.matches(f) for f in filters):  # amqtt leaks others' retained messages
                    p.seen.append((str(m.topic), bytes(m.payload), m.retain))

        task = asyncio.create_task(read())
        try:
            yield p
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def sim_config(**gx: Any) -> SimulatorConfig:
    return SimulatorConfig(
        start=NOON, tick_s=0,  # frozen physics: readings compare exactly with the truth
        homes=[HomeConfig(id="home-x", initial_soc_pct=60,
                          devices=[VictronGxConfig(id="gx", kind="victron_gx", **gx)])],
    )  # fmt: skip


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_config()) as simulator:
        yield simulator


@pytest_asyncio.fixture
async def transports() -> AsyncIterator[Transports]:
    t = Transports(mqtt=MqttPool(timeout_s=1.0, backoff_max_s=0.2))
    yield t
    await t.close()


@asynccontextmanager
async def victron(sim: Simulator, transports: Transports, **options: Any) -> AsyncIterator[VictronGxDriver]:
    ep = sim.endpoint("home-x/gx")
    opts = VictronGxOptions.model_validate({"host": ep.host, "port": ep.port, "confirm_timeout_s": 1.5,
                                            "connect_timeout_s": 2.0, **options})  # fmt: skip
    driver = VictronGxDriver("gx", opts, transports)
    try:
        yield driver
    finally:
        await driver.close()


@pytest_asyncio.fixture
async def driver(sim: Simulator, transports: Transports) -> AsyncIterator[VictronGxDriver]:
    # The simulated GX publishes a storm alert at its own path (Venus OS has none): turned on here.
    async with victron(sim, transports, capacity_wh=13500, storm_alert={"path": SIM_STORM}) as d:
        await d.connect()
        yield d


async def test_connect_discovers_the_portal_and_reads_the_truth(
    sim: Simulator, driver: VictronGxDriver
) -> None:
    assert driver.portal_id == PORTAL
    assert Capability.BATTERY_POWER not in driver.capabilities
    assert {Capability.BACKUP_RESERVE, Capability.EXPORT_LIMIT, Capability.STORM_WATCH} <= driver.capabilities
    truth = sim.homes["home-x"].truth()
    t = await driver.read()
    assert t.soc_pct == pytest.approx(truth.soc_pct, abs=0.06)
    assert t.battery_w == pytest.approx(truth.battery_w, abs=0.6)  # + discharging
    assert t.grid_w == pytest.approx(truth.grid_w, abs=1.5)  # + importing, 3 phases summed
    assert t.solar_w == pytest.approx(truth.solar_w, abs=0.6)
    assert t.load_w == pytest.approx(truth.load_w, abs=1.5)
    assert t.grid_up is True
    assert t.storm_alert is False
    assert t.capacity_wh == 13500


async def test_capabilities_are_what_the_gx_publishes_and_storm_only_when_configured(
    sim: Simulator, transports: Transports
) -> None:
    home = sim.homes["home-x"]
    home.set_storm_alert(True)  # the simulated GX publishes platform/0/StormAlert = 1
    async with victron(sim, transports) as d:
        assert d.capabilities == frozenset()  # nothing known before the full publish
        await d.connect()
        t = await d.read()
    assert t.storm_alert is None
    assert d.capabilities == frozenset(Capability) - {Capability.BATTERY_POWER, Capability.STORM_WATCH}
    async with victron(sim, transports, storm_alert={"path": "platform/0/NoSuchPath"}) as d:
        await d.connect()
        assert (await d.read()).storm_alert is None
        assert Capability.STORM_WATCH not in d.capabilities


async def test_the_vebus_instance_is_learned_from_the_gx(transports: Transports) -> None:
    # VE.Bus device instances differ between GX models and ports: the driver must not assume 227.
    async with Simulator(sim_config(vebus_instance=246)) as sim, victron(sim, transports) as d:
        await d.connect()
        assert d.vebus_instance == 246
        assert Capability.GRID_CHARGING in d.capabilities
        await d.apply(Setpoints(reserve_pct=30, grid_charging=True, export_limit_w=None))
        assert sim.homes["home-x"].truth().grid_charging is True
        assert (await d.read_back()).grid_charging is True


async def test_known_portal_skips_discovery_and_info_names_it(
    sim: Simulator, transports: Transports
) -> None:
    async with victron(sim, transports, portal_id=PORTAL) as d:
        info = await d.connect()
        assert (info.manufacturer, info.serial_number) == ("Victron Energy", PORTAL)
        assert (await d.read()).soc_pct is not None


async def test_grid_outage_and_storm_alert_flow_as_changes(
    sim: Simulator, driver: VictronGxDriver
) -> None:
    home = sim.homes["home-x"]
    home.set_grid_up(False)
    home.set_storm_alert(True)
    # the GX publishes path by path: the grid powers may land a message after ActiveIn/Source
    t = await eventually(
        driver.read, lambda t: t.grid_up is False and t.storm_alert is True and t.grid_w == 0,
        timeout=5)
    assert t.grid_w == 0


async def test_each_apply_lands_on_the_truth_and_on_the_gx_topics(
    sim: Simulator, driver: VictronGxDriver
) -> None:
    home = sim.homes["home-x"]
    async with probe(sim.endpoint("home-x/gx").port) as p:
        await driver.apply(Setpoints(reserve_pct=35, grid_charging=True, export_limit_w=None))
        truth = home.truth()
        assert (truth.reserve_pct, truth.grid_charging, truth.export_limit_w) == (35, True, None)
        assert p.values(MIN_SOC)[-1] == 35
        assert p.values(DISABLE_CHARGE)[-1] == 0
        # only what differed was written, on W/, never retained
        written = {path: value for path, value, _ in p.writes()}
        assert written == {MIN_SOC: 35, DISABLE_CHARGE: 0}
        assert not any(retained for *_, retained in p.writes())

        await driver.apply(Setpoints(reserve_pct=35, grid_charging=True, export_limit_w=2500))
        truth = home.truth()
        assert truth.export_limit_w == pytest.approx(2500)
        assert p.values(MAX_FEED_IN)[-1] == 2500

        await driver.apply(Setpoints(reserve_pct=35, grid_charging=False, export_limit_w=0))
        truth = home.truth()
        assert (truth.grid_charging, truth.export_limit_w) == (False, 0)
        assert p.values(PREVENT_FEEDBACK)[-1] == 1
        assert p.values(DISABLE_FEED_IN)[-1] == 1
        assert p.values(MAX_FEED_IN)[-1] == 0

        await driver.apply(Setpoints(reserve_pct=80, grid_charging=False, export_limit_w=None))
        truth = home.truth()
        assert (truth.reserve_pct, truth.export_limit_w) == (80, None)
        assert p.values(MAX_FEED_IN)[-1] == -1
        assert p.values(PREVENT_FEEDBACK)[-1] == 0

        back = await driver.read_back()
        assert back == Setpoints(reserve_pct=80, grid_charging=False, export_limit_w=None)

        before = len(p.writes())
        await driver.apply(back)  # nothing differs: nothing is written
        assert len(p.writes()) == before


async def test_invalid_write_is_not_echoed_and_not_confirmed(
    sim: Simulator, driver: VictronGxDriver
) -> None:
    home = sim.homes["home-x"]
    reserve = home.truth().reserve_pct
    with pytest.raises(NotConfirmed) as caught:
        await driver.apply(Setpoints(reserve_pct=150, grid_charging=False))
    assert caught.value.expected == {MIN_SOC: 150}
    assert home.truth().reserve_pct == reserve
    assert (await driver.read_back()).reserve_pct == round(reserve)


async def test_a_quiet_night_keeps_the_gx_alive(transports: Transports) -> None:
    # Issue 9 defect 8: at night (PV 0, steady load) the GX changes nothing and so publishes
    # nothing; the driver judged liveness by the last changed value and flapped "stale".
    # Physics runs at 60x here: the 4.5 s below are 4.5 quiet simulated minutes, 15 keepalive
    # cycles, 3x the stale limit.
    night = datetime(2026, 1, 15, 2, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    config = SimulatorConfig(
        start=night, clock_speed=60, tick_s=0.05,
        homes=[HomeConfig(id="home-x", initial_soc_pct=60, base_load_w=0,
                          devices=[VictronGxConfig(id="gx", kind="victron_gx")])],
    )  # fmt: skip
    async with Simulator(config) as sim, victron(sim, transports, keepalive_s=0.3, probe_timeout_s=1.5) as d:
        home = sim.homes["home-x"]
        await d.connect()
        connected_at = asyncio.get_running_loop().time()
        start = home.truth()
        assert (start.solar_w, start.load_w, start.battery_w, start.grid_w) == (0, 0, 0, 0)
        reads = 0
        while asyncio.get_running_loop().time() - connected_at < 4.5:
            t = await d.read()  # raised "GX data stale (last message 1.5 s ago)" before the fix
            assert t.soc_pct == pytest.approx(60, abs=0.06)
            reads += 1
            await asyncio.sleep(0.05)
        assert home.physics.at - night > timedelta(minutes=3)  # the night did go on
        # and it was quiet: since the connect's full publish only the keepalive probe's answers came
        changed = {path for path in d.values.snapshot()
                   if (sample := d.values.get(path)) is not None and sample.at > connected_at}  # fmt: skip
        assert changed == {PROBE_PATH}
        assert reads > 40


async def test_a_gx_that_stops_answering_goes_stale_until_it_answers_again(
    sim: Simulator, transports: Transports
) -> None:
    gx = sim.homes["home-x"].victron_gx("gx")
    async with victron(sim, transports, keepalive_s=0.1, probe_timeout_s=0.3) as d:
        await d.connect()
        await d.read()
        gx.silent = True  # dbus-flashmq hangs; the broker keeps our connection up
        with pytest.raises(DeviceUnreachable, match=r"stale \(no answer to the keepalive probe"):
            await _read_until_error(d)
        assert d._broker is not None
        assert d._broker.connected
        with pytest.raises(DeviceUnreachable, match="stale"):
            await d.apply(Setpoints(reserve_pct=50, grid_charging=False))
        gx.silent = False
        await eventually(lambda: _reads(d), timeout=5)  # the next probe is answered: no reconnect
        await d.connect()  # what the poller does after a failure: a full publish, fresh at once
        assert (await d.read()).soc_pct is not None


async def test_keepalives_keep_the_gx_publishing() -> None:
    async with Simulator(sim_config(keepalive_timeout_s=0.4)) as sim:
        gx = sim.homes["home-x"].victron_gx("gx")
        t = Transports(mqtt=MqttPool(timeout_s=1.0, backoff_max_s=0.2))
        try:
            async with victron(sim, t, keepalive_s=0.1) as d:
                await d.connect()
                for _ in range(8):  # well past the GX's 0.4 s timeout
                    await asyncio.sleep(0.1)
                    assert gx.alive
            await eventually(lambda: not gx.alive, timeout=3)  # closed: keepalives stop
        finally:
            await t.close()


async def test_wrong_portal_is_unreachable(sim: Simulator, transports: Transports) -> None:
    async with victron(sim, transports, portal_id="0000deadbeef", connect_timeout_s=0.3) as d:
        with pytest.raises(DeviceUnreachable, match="full_publish_completed"):
            await d.connect()


async def test_gx_gone_is_unreachable(sim: Simulator, driver: VictronGxDriver) -> None:
    await sim.homes["home-x"].victron_gx("gx").stop()
    with pytest.raises(DeviceUnreachable):
        await _read_until_error(driver)


async def _reads(driver: VictronGxDriver) -> bool:
    try:
        await driver.read()
    except DeviceUnreachable:
        return False
    return True


async def _read_until_error(driver: VictronGxDriver) -> None:
    async with asyncio.timeout(5):
        while True:
            await driver.read()
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("fault", ["broker_restart", "drop_connections"])
async def test_broker_restart_reconnects_resubscribes_and_confirms(
    sim: Simulator, driver: VictronGxDriver, fault: str
) -> None:
    gx = sim.homes["home-x"].victron_gx("gx")
    connection = driver._broker
    assert connection is not None
    assert connection.connections == 1
    mark = driver.values.seq
    await getattr(gx, fault)()
    await eventually(lambda: connection.connections >= 2 and connection.connected, timeout=5)
    # the driver asks for a full publish after a reconnect: values flow on the re-subscription
    await eventually(lambda: driver.values.seq > mark + 10, timeout=5)
    await driver.apply(Setpoints(reserve_pct=45, grid_charging=True, export_limit_w=1500))
    truth = sim.homes["home-x"].truth()
    assert (truth.reserve_pct, truth.grid_charging) == (45, True)
    assert truth.export_limit_w == pytest.approx(1500)
    assert (await driver.read()).soc_pct is not None


async def test_a_secured_gx_broker_wants_the_login(transports: Transports) -> None:
    """Venus OS's secured profile refuses anonymous clients (issue 14, item 5)."""
    config = sim_config(broker_username="venus", broker_password="gx-pass-0451")
    async with Simulator(config) as secured:
        async with victron(secured, transports, connect_timeout_s=1.0) as anonymous:
            with pytest.raises(DeviceUnreachable, match="refused the login of anonymous client"):
                await anonymous.connect()
        async with victron(secured, transports, username="venus", password="gx-pass-0451") as gx:
            info = await gx.connect()
            assert info.serial_number == "c0619ab1f00d"
            reading = await gx.read()
            assert reading.soc_pct == pytest.approx(secured.homes["home-x"].truth().soc_pct, abs=1)
