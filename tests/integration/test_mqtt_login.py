"""Brokers that refuse anonymous clients: password and TLS for the MQTT transport, the generic MQTT
driver and the Home Assistant bridge, against a Mosquitto with a password file and TLS listeners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from drivers.errors import DeviceUnreachable
from drivers.mqtt_battery.driver import MqttBatteryDriver
from drivers.mqtt_battery.options import MqttBatteryOptions
from drivers.mqtt_login import BrokerLogin, BrokerTls
from drivers.transport import MqttPool, Transports
from drivers.transport.mqtt import MqttBroker
from gateway.core.config import MqttNorthbound
from simulator import HomeConfig, MqttBatteryConfig, Simulator, SimulatorConfig
from simulator.config import ControlConfig
from tests.ha_client import HaClient
from tests.helpers import eventually, gateway_config
from tests.integration.brokers import mosquitto_path
from tests.integration.conftest import GatewayFactory
from tests.integration.secure_broker import (
    PASSWORD,
    USER,
    Pki,
    SecuredBroker,
    make_pki,
    password_file,
    secured_mosquitto,
)
from tests.integration.test_mqtt_battery_driver import battery_options

pytestmark = pytest.mark.skipif(mosquitto_path() is None,
                                reason="needs the mosquitto binary (a password file, TLS listeners)")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
def passwd(tmp_path: Path) -> Path:
    return password_file(tmp_path)


@pytest_asyncio.fixture
async def secured(tmp_path: Path, pki: Pki, passwd: Path) -> AsyncIterator[SecuredBroker]:
    async with secured_mosquitto(tmp_path, pki, passwd) as broker:
        yield broker


async def connect(port: int, login: BrokerLogin) -> MqttBroker:
    broker = MqttBroker("127.0.0.1", port, timeout_s=1.0, backoff_max_s=0.2, client_prefix="t",
                        login=login)
    broker.start()
    return broker


async def refusal(port: int, login: BrokerLogin, wait_s: float = 3.0) -> str:
    """What a client with ``login`` is told when the broker will not have it."""
    broker = await connect(port, login)
    try:
        with pytest.raises(DeviceUnreachable) as caught:
            await broker.wait_connected(wait_s)
        return str(caught.value)
    finally:
        await broker.aclose()


async def roundtrip(port: int, login: BrokerLogin) -> None:
    """Connect with ``login``, subscribe, publish, receive."""
    broker = await connect(port, login)
    try:
        got: list[bytes] = []
        await broker.wait_connected(3.0)
        await broker.subscribe("t/echo", lambda _t, payload, _r: got.append(payload))
        await broker.publish("t/echo", b"hi")
        await eventually(lambda: got == [b"hi"])
    finally:
        await broker.aclose()


async def test_an_anonymous_client_and_a_wrong_password_are_refused_and_named(
    secured: SecuredBroker,
) -> None:
    assert "refused the login of anonymous client" in await refusal(secured.plain_port, BrokerLogin())
    wrong = await refusal(secured.plain_port, BrokerLogin(USER, "not-the-password"))
    assert f"refused the login of user {USER!r}" in wrong
    assert "not-the-password" not in wrong
    await roundtrip(secured.plain_port, BrokerLogin(USER, PASSWORD))


async def test_tls_verifies_the_broker_by_its_ca_file(secured: SecuredBroker) -> None:
    pki = secured.pki
    await roundtrip(secured.tls_port, BrokerLogin(USER, PASSWORD, BrokerTls(ca_file=pki.ca)))
    untrusted = await refusal(secured.tls_port,
                              BrokerLogin(USER, PASSWORD, BrokerTls(ca_file=pki.other_ca)))
    assert "not trusted" in untrusted
    # verification off (documented as a last resort): the same broker is accepted
    await roundtrip(secured.tls_port,
                    BrokerLogin(USER, PASSWORD, BrokerTls(ca_file=pki.other_ca, verify=False)))
    # and without TLS, the TLS port is no MQTT broker at all
    assert await refusal(secured.tls_port, BrokerLogin(USER, PASSWORD), wait_s=0.5)


async def test_a_client_certificate_where_the_broker_wants_one(secured: SecuredBroker) -> None:
    pki = secured.pki
    assert await refusal(secured.cert_port, BrokerLogin(USER, PASSWORD, BrokerTls(ca_file=pki.ca)),
                         wait_s=0.5)
    await roundtrip(secured.cert_port, BrokerLogin(USER, PASSWORD, BrokerTls(
        ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)))


async def test_a_missing_ca_file_is_a_clear_connect_failure(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    why = await refusal(secured.tls_port,
                        BrokerLogin(USER, PASSWORD, BrokerTls(ca_file=tmp_path / "nope.pem")))
    assert "TLS setup failed" in why


@pytest_asyncio.fixture
async def battery_home(secured: SecuredBroker) -> AsyncIterator[Simulator]:
    """The simulated MQTT battery, logged in on the broker's password listener."""
    config = SimulatorConfig(control=ControlConfig(port=0), tick_s=0.05, homes=[HomeConfig(
        id="home", devices=[MqttBatteryConfig(
            id="battery", kind="mqtt_battery", broker_host=secured.host,
            broker_port=secured.plain_port, base_topic="sim/battery1", publish_interval_s=0.1,
            broker_username=USER, broker_password=PASSWORD)])])
    async with Simulator(config) as sim:
        # connected before the test: stopping the simulated battery halfway through its
        # connect can hang its shutdown (the broker login makes the connect slower)
        await eventually(lambda: sim.homes["home"].mqtt_battery("battery").connected)
        yield sim


def driver_options(secured: SecuredBroker, **login: Any) -> MqttBatteryOptions:
    return MqttBatteryOptions.model_validate(
        battery_options(secured.host, secured.tls_port, **login))


async def test_the_mqtt_driver_reads_and_writes_over_tls_with_a_login(
    secured: SecuredBroker, battery_home: Simulator
) -> None:
    options = driver_options(secured, username=USER, password=PASSWORD,
                             tls={"ca_file": str(secured.pki.ca)})
    transports = Transports(mqtt=MqttPool(timeout_s=1.0, backoff_max_s=0.2))
    driver = MqttBatteryDriver("battery", options, transports)
    try:
        await driver.connect()
        reading = await driver.read()
        assert reading.soc_pct == pytest.approx(battery_home.homes["home"].truth().soc_pct, abs=1)
    finally:
        await driver.close()
        await transports.close()


@pytest.mark.parametrize("login", [
    {}, {"username": USER, "password": "wrong"},
    {"username": USER, "password": PASSWORD, "tls": {"ca_file": "OTHER"}},
], ids=["anonymous", "wrong-password", "wrong-ca"])
async def test_the_mqtt_driver_names_why_the_broker_refused_it(
    secured: SecuredBroker, battery_home: Simulator, login: dict[str, Any]
) -> None:
    if "tls" in login:
        login = {**login, "tls": {"ca_file": str(secured.pki.other_ca)}}
    options = driver_options(secured, **login)
    if "tls" not in login:  # the password listener, not the TLS one
        options = options.model_copy(update={"port": secured.plain_port})
    transports = Transports(mqtt=MqttPool(timeout_s=1.0, backoff_max_s=0.2))
    driver = MqttBatteryDriver("battery", options, transports)
    try:
        with capture_logs() as events, pytest.raises(DeviceUnreachable) as caught:
            await driver.connect()
        assert "refused the login" in str(caught.value) or "not trusted" in str(caught.value)
        assert PASSWORD not in repr(events)
        assert "'wrong'" not in str(caught.value)
    finally:
        await driver.close()
        await transports.close()


@pytest.mark.usefixtures("sim")
async def test_the_bridge_logs_in_over_tls_and_never_logs_the_password(
    start_gateway: GatewayFactory, sim: Simulator, secured: SecuredBroker, tmp_path: Path
) -> None:
    pki = secured.pki
    section = MqttNorthbound.model_validate({
        "host": secured.host, "port": secured.tls_port, "username": USER, "password": PASSWORD,
        "tls": {"ca_file": str(pki.ca)}, "state_interval_s": 0.1, "timeout_s": 1.0,
        "backoff_max_s": 0.2})
    assert PASSWORD not in repr(section)
    assert PASSWORD not in str(section.model_dump())
    config = gateway_config(sim, tmp_path / "data").model_copy(update={"mqtt_northbound": section})
    with capture_logs() as events:
        async with HaClient(secured.host, secured.tls_port, username=USER, password=PASSWORD,
                            ca_file=str(pki.ca)) as ha, start_gateway(config):
            await eventually(lambda: ha.last("homeassistant/device/energy_gateway_1001/config"))
    assert PASSWORD not in repr(events)


async def test_a_refused_bridge_leaves_the_api_alone(
    start_gateway: GatewayFactory, sim: Simulator, secured: SecuredBroker, tmp_path: Path
) -> None:
    section = MqttNorthbound(host=secured.host, port=secured.plain_port, username=USER,
                             password="wrong-one", timeout_s=1.0, backoff_max_s=0.2)
    config = gateway_config(sim, tmp_path / "data").model_copy(update={"mqtt_northbound": section})
    with capture_logs() as events:
        async with start_gateway(config) as gateway:  # the site comes online all the same
            refused = await eventually(lambda: [e for e in events
                                                if e["event"] == "mqtt.connect_refused"])
            assert not gateway.site.offline()
    assert f"user {USER!r}" in refused[0]["error"]
    assert "wrong-one" not in repr(events)
