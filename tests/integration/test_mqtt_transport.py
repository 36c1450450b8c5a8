"""The shared MQTT pool on real brokers: one connection per broker, routing, reconnect + re-subscribe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiomqtt
import pytest
import pytest_asyncio

from drivers.errors import DeviceUnreachable
from drivers.transport import MqttPool
from drivers.transport.mqtt import Handler
from tests.helpers import eventually
from tests.integration.brokers import RunningBroker, free_port, mosquitto_path, mqtt_broker

Seen = list[tuple[str, bytes, bool]]


@pytest_asyncio.fixture(params=["mosquitto", "amqtt"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[RunningBroker]:
    if request.param == "mosquitto" and mosquitto_path() is None:
        pytest.skip("mosquitto is not installed")
    async with mqtt_broker(request.param) as running:
        yield running


@pytest_asyncio.fixture
async def pool() -> AsyncIterator[MqttPool]:
    p = MqttPool(timeout_s=1.0, backoff_max_s=0.2)
    yield p
    await p.close()


def recorder(seen: Seen) -> Handler:
    def handler(topic: str, payload: bytes, retained: bool) -> None:
        seen.append((topic, payload, retained))

    return handler


async def publish(broker: RunningBroker, topic: str, payload: bytes, *, retain: bool = False) -> None:
    async with aiomqtt.Client(broker.host, broker.port, timeout=5) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def test_one_connection_per_broker_shared_and_ref_counted(
    broker: RunningBroker, pool: MqttPool
) -> None:
    a = pool.acquire(broker.host, broker.port)
    b = pool.acquire(broker.host, broker.port)
    assert a is b
    await a.wait_connected()
    await pool.release(a)
    states = [b.connected]  # one share left
    await pool.release(b)
    states.append(b.connected)
    assert states == [True, False]
    with pytest.raises(DeviceUnreachable):
        await b.publish("x/y", b"1")


async def test_routes_by_own_filters_with_retained_flag(broker: RunningBroker, pool: MqttPool) -> None:
    conn = pool.acquire(broker.host, broker.port)
    await publish(broker, "dev/1/status", b"online", retain=True)
    state: Seen = []
    status: Seen = []
    await conn.subscribe("dev/+/state", recorder(state))
    await conn.subscribe("dev/1/#", recorder(status))
    await eventually(lambda: status == [("dev/1/status", b"online", True)])
    await conn.publish("dev/1/state", b'{"soc": 50}')
    await conn.publish("dev/2/state", b"2", qos=0)
    await conn.publish("other/topic", b"x")
    # overlapping filters: amqtt sends one copy per matching filter (MQTT 3.1.1 allows it),
    # mosquitto one; every copy reaches every matching handler, nothing else does
    await eventually(lambda: {m[0] for m in state} == {"dev/1/state", "dev/2/state"})
    assert set(state) == {("dev/1/state", b'{"soc": 50}', False), ("dev/2/state", b"2", False)}
    await eventually(lambda: len(status) >= 2)
    assert set(status[1:]) == {("dev/1/state", b'{"soc": 50}', False)}
    await publish(broker, "dev/1/status", b"", retain=True)  # clear the retained message


async def test_retained_messages_of_foreign_filters_are_filtered() -> None:
    # amqtt pushes every retained message matching ANY client's filter to a newly connected client
    async with mqtt_broker("amqtt") as broker:
        async with aiomqtt.Client(broker.host, broker.port, timeout=5) as other:
            await other.subscribe("sim/#")
            await publish(broker, "sim/status", b"v", retain=True)
            pool = MqttPool(timeout_s=1.0, backoff_max_s=0.2)
            try:
                conn = pool.acquire(broker.host, broker.port)
                seen: Seen = []
                await conn.subscribe("mine/x", recorder(seen))
                await conn.publish("mine/x", b"1")
                await eventually(lambda: seen)
                assert seen == [("mine/x", b"1", False)]
            finally:
                await pool.close()


async def test_unsubscribe_keeps_filters_others_still_use(broker: RunningBroker, pool: MqttPool) -> None:
    conn = pool.acquire(broker.host, broker.port)
    first: Seen = []
    second: Seen = []
    sub1 = await conn.subscribe("t/#", recorder(first))
    await conn.subscribe("t/#", recorder(second))
    await conn.unsubscribe(sub1)
    await conn.publish("t/a", b"1")
    await eventually(lambda: second)
    assert first == []


@pytest_asyncio.fixture
async def restartable() -> AsyncIterator[RunningBroker]:
    # mosquitto when installed: amqtt 0.12.1's shutdown can hang on Python 3.11 (its reader task's
    # wait_for swallows the cancel), so restarting it mid-test would be flaky.
    async with mqtt_broker() as running:
        yield running


async def test_broker_restart_reconnects_and_resubscribes(restartable: RunningBroker, pool: MqttPool) -> None:
    broker = restartable
    conn = pool.acquire(broker.host, broker.port)
    seen: Seen = []
    reconnects: list[int] = []
    conn.on_connect(lambda: reconnects.append(conn.connections))
    await conn.subscribe("a/#", recorder(seen))
    await conn.subscribe("b/c", recorder(seen))
    await conn.wait_connected()
    await broker.stop()
    with pytest.raises(DeviceUnreachable):
        await conn.publish("a/1", b"lost", timeout_s=0.2)
    await broker.start()
    await eventually(lambda: conn.connected, timeout=5)
    assert conn.connections >= 2
    assert reconnects[-1] == conn.connections
    await publish(broker, "a/1", b"after")
    await publish(broker, "b/c", b"after")
    await eventually(lambda: len(seen) == 2)
    assert sorted(seen) == [("a/1", b"after", False), ("b/c", b"after", False)]


async def test_no_broker_is_unreachable(pool: MqttPool) -> None:
    conn = pool.acquire("127.0.0.1", free_port())
    with pytest.raises(DeviceUnreachable, match="not connected"):
        await conn.wait_connected(0.3)
    with pytest.raises(DeviceUnreachable):
        await conn.publish("x", b"1", timeout_s=0.1)
    with pytest.raises(ValueError, match="invalid"):
        await conn.publish("x/#", b"1")
    with pytest.raises(ValueError, match="invalid"):
        await conn.subscribe("x/#/y", recorder([]))
