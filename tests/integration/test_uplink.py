"""The edge's uplink against a real broker and the simulator: publishes, commands, duplicates, catch-up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from gateway.core.config import Config
from gateway.core.config.models import UplinkSection
from gateway.core.uplink.contract import CommandMessage, Topics, encode
from gateway.web.keys import GATEWAY
from simulator import Simulator
from tests.helpers import SITE_ID, eventually, gateway_config
from tests.integration.brokers import RunningBroker, mqtt_broker
from tests.integration.conftest import GatewayFactory

BASE = "test-egw/v1"
GW = "edge-a"
TOPICS = Topics(BASE)


def uplink_config(sim: Simulator, data_dir: Path, broker: RunningBroker) -> Config:
    """The test gateway config with an uplink to ``broker``."""
    base = gateway_config(sim, data_dir)
    return base.model_copy(update={"uplink": UplinkSection(
        host=broker.host, port=broker.port, gateway_id=GW, base_topic=BASE, live_every_s=1.0)})


class Listener:
    """Every message under the gateway's namespace, by topic (the newest per topic kept too)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def of(self, topic: str) -> list[dict[str, Any]]:
        return [m for t, m in self.messages if t == topic]


@asynccontextmanager
async def listening(broker: RunningBroker) -> AsyncIterator[tuple[aiomqtt.Client, Listener]]:
    listener = Listener()
    async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5,
                              identifier=f"test-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(f"{BASE}/#", qos=1)

        async def pump() -> None:
            async for message in client.messages:
                try:
                    body = orjson.loads(bytes(message.payload))
                except orjson.JSONDecodeError:  # the malformed message this test sends
                    continue
                listener.messages.append((str(message.topic), body))

        task = asyncio.create_task(pump())
        try:
            yield client, listener
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


def command(command_id: str, reserve: int, *, ttl_s: float = 30.0) -> bytes:
    return encode(CommandMessage(command_id=command_id, site_id=SITE_ID, command="backup",
                                 body={"backup_reserve_percent": reserve},
                                 expires_at=time.time() + ttl_s))


async def test_uplink_publishes_and_runs_commands_once(
    sim: Simulator, tmp_path: Path, start_gateway: GatewayFactory,
) -> None:
    home = sim.homes["home-1001"]
    async with mqtt_broker() as broker, listening(broker) as (client, heard):
        async with start_gateway(uplink_config(sim, tmp_path / "data", broker)) as gw:
            presence = await eventually(lambda: heard.of(TOPICS.presence(GW)))
            assert presence[-1]["online"] is True
            assert presence[-1]["sites"] == [SITE_ID]
            info = await eventually(lambda: heard.of(TOPICS.info(GW, SITE_ID)))
            assert info[-1]["products"]["energy_site_id"] == SITE_ID
            live = await eventually(lambda: [m for m in heard.of(TOPICS.live(GW, SITE_ID))
                                             if m["live_status"] is not None])
            assert {"solar_power", "battery_power", "grid_power"} <= set(live[-1]["live_status"])

            await client.publish(TOPICS.commands(GW), command("c-1", 37), qos=1)
            outcome = await eventually(lambda: heard.of(TOPICS.outcomes(GW)), timeout=15)
            assert outcome[0]["command_id"] == "c-1"
            assert outcome[0]["status"] == 200, outcome
            assert outcome[0]["body"] == {"response": {"code": 201, "message": "Updated"}}
            await eventually(lambda: home.truth().reserve_pct == 37)

            # the same id again: answered from memory, not applied again
            await client.publish(TOPICS.commands(GW), command("c-1", 55), qos=1)
            await eventually(lambda: len(heard.of(TOPICS.outcomes(GW))) == 2)
            assert heard.of(TOPICS.outcomes(GW))[1]["status"] == 200
            assert gw.site.settings.backup_reserve_pct == 37
            # a bad body: the edge's own 400, nothing applied
            bad = encode(CommandMessage(command_id="c-2", site_id=SITE_ID, command="backup",
                                        body={"backup_reserve_percent": 140},
                                        expires_at=time.time() + 30))
            await client.publish(TOPICS.commands(GW), bad, qos=1)
            await eventually(lambda: len(heard.of(TOPICS.outcomes(GW))) == 3)
            assert heard.of(TOPICS.outcomes(GW))[2]["status"] == 400
            # expired, unknown site, malformed: dropped and counted, never answered
            link = gw.app[GATEWAY].uplink
            assert link is not None
            await client.publish(TOPICS.commands(GW), command("c-3", 60, ttl_s=-1), qos=1)
            await client.publish(TOPICS.commands(GW), encode(CommandMessage(
                command_id="c-4", site_id=999, command="backup",
                body={"backup_reserve_percent": 60}, expires_at=time.time() + 30)), qos=1)
            await client.publish(TOPICS.commands(GW), b"{not json", qos=1)
            await eventually(lambda: link.counters["dropped_expired"] == 1
                             and link.counters["dropped_unknown_site"] == 1
                             and link.counters["dropped_malformed"] == 1)
            assert len(heard.of(TOPICS.outcomes(GW))) == 3
            assert home.truth().reserve_pct == 37
        # a clean stop says offline (retained)
        await eventually(lambda: heard.of(TOPICS.presence(GW))[-1]["online"] is False)


async def test_uplink_down_edge_keeps_control_and_catches_up(
    sim: Simulator, tmp_path: Path, start_gateway: GatewayFactory,
) -> None:
    home = sim.homes["home-1001"]
    async with mqtt_broker() as broker:
        async with start_gateway(uplink_config(sim, tmp_path / "data", broker)) as gw:
            link = gw.app[GATEWAY].uplink
            assert link is not None
            await eventually(lambda: link.connected)
            async with listening(broker) as (client, _):
                await client.publish(TOPICS.commands(GW), command("before-cut", 33), qos=1)
                await eventually(lambda: link.counters["outcomes_published"] == 1, timeout=15)
            await broker.stop()
            await eventually(lambda: not link.connected)
            # the edge keeps controlling: a local command still reaches the device
            await gw.site.command("backup", {"backup_reserve_pct": 44})
            await eventually(lambda: home.truth().reserve_pct == 44)
            await broker.restart()
            async with listening(broker) as (client, heard):
                await eventually(lambda: link.connected, timeout=15)
                live = await eventually(lambda: heard.of(TOPICS.live(GW, SITE_ID)), timeout=15)
                assert live[-1]["v"] == 1
                # the outcome sent before the cut is not sent again (it was acknowledged)
                assert heard.of(TOPICS.outcomes(GW)) == []
