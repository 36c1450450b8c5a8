"""The edge's uplink against a real broker and the simulator: publishes, commands, duplicates, catch-up."""

from __future__ import annotations

import asyncio
import sqlite3
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


def uplink_config(sim: Simulator, data_dir: Path, broker: RunningBroker, **kwargs: Any) -> Config:
    """The test gateway config with an uplink to ``broker``."""
    base = gateway_config(sim, data_dir, **kwargs)
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


async def test_a_retry_of_an_unsettled_command_confirms_it_again_unless_superseded(
    sim: Simulator, tmp_path: Path, start_gateway: GatewayFactory,
) -> None:
    home = sim.homes["home-1001"]
    device = home.device("inverter")
    async with mqtt_broker() as broker, listening(broker) as (client, heard):
        config = uplink_config(sim, tmp_path / "data", broker, command_timeout_s=1.0)
        async with start_gateway(config) as gw:
            link = gw.app[GATEWAY].uplink
            assert link is not None
            await eventually(lambda: link.connected)

            def outcomes(n: int) -> list[dict[str, Any]]:
                got = heard.of(TOPICS.outcomes(GW))
                return got if len(got) >= n else []

            # acknowledged, never applied: 504, the setting kept
            await device.apply_faults(ignore_writes=True)
            await client.publish(TOPICS.commands(GW), command("u-1", 61), qos=1)
            assert (await eventually(lambda: outcomes(1), timeout=15))[0]["status"] == 504
            # the device takes writes again; the client's retry confirms it on the device
            await device.apply_faults(ignore_writes=False)
            await client.publish(TOPICS.commands(GW), command("u-1", 61), qos=1)
            assert (await eventually(lambda: outcomes(2), timeout=15))[1]["status"] == 200
            assert home.truth().reserve_pct == 61
            assert link.counters["retries_rerun"] == 1
            # unsettled, then superseded by a newer command: the retry repeats the old answer and
            # never puts the old value back over the newer one
            await device.apply_faults(ignore_writes=True)
            await client.publish(TOPICS.commands(GW), command("u-2", 70), qos=1)
            assert (await eventually(lambda: outcomes(3), timeout=15))[2]["status"] == 504
            await device.apply_faults(ignore_writes=False)
            await gw.site.command("backup", {"backup_reserve_pct": 45})
            await client.publish(TOPICS.commands(GW), command("u-2", 70), qos=1)
            assert (await eventually(lambda: outcomes(4), timeout=15))[3]["status"] == 504
            assert link.counters["retries_rerun"] == 1
            assert (gw.site.settings.backup_reserve_pct, home.truth().reserve_pct) == (45, 45)


async def test_a_command_a_crash_interrupted_runs_again_when_retried(
    sim: Simulator, tmp_path: Path, start_gateway: GatewayFactory,
) -> None:
    home = sim.homes["home-1001"]
    data_dir = tmp_path / "data"
    async with mqtt_broker() as broker, listening(broker) as (client, heard):
        config = uplink_config(sim, data_dir, broker)
        async with start_gateway(config) as gw:
            link = gw.app[GATEWAY].uplink
            assert link is not None
            await eventually(lambda: link.connected)
            # the desired setting is saved before the device is written (docs/api.md)
            await gw.site.command("backup", {"backup_reserve_pct": 37})
        # the process died with uplink command crash-1 taken but unanswered
        db = sqlite3.connect(data_dir / "gateway.sqlite3")
        with db:
            db.execute("INSERT INTO uplink_commands (command_id, site_id, command, received_at) "
                       "VALUES ('crash-1', ?, 'backup', ?)", (SITE_ID, time.time()))
        db.close()
        async with start_gateway(config) as gw:
            restarted = gw.app[GATEWAY].uplink
            assert restarted is not None
            # closed as interrupted (503) at start, published; the retry runs it and confirms
            first = await eventually(lambda: heard.of(TOPICS.outcomes(GW)), timeout=15)
            assert (first[0]["command_id"], first[0]["status"]) == ("crash-1", 503)
            await client.publish(TOPICS.commands(GW), command("crash-1", 37), qos=1)
            second = await eventually(lambda: heard.of(TOPICS.outcomes(GW))[1:], timeout=15)
            assert (second[0]["command_id"], second[0]["status"]) == ("crash-1", 200)
            assert restarted.counters["retries_rerun"] == 1
            assert home.truth().reserve_pct == 37
