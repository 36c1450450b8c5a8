"""The hub with a real broker, PostgreSQL and Redis: commands reach the simulated device, 408, 504, limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import asyncpg
import jwt
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from gateway import cli
from gateway.core.config import Plan, RateLimits
from gateway.core.config.hub import HubConfig, HubSection
from gateway.core.config.models import MqttLink
from gateway.core.history import Bucket
from gateway.core.history.flows import FlowEnergy
from gateway.core.uplink.contract import (
    LiveMessage,
    OutcomeMessage,
    Presence,
    SiteInfoMessage,
    Topics,
    encode,
)
from gateway.hub.app import INGEST, STORE, create_hub_app
from gateway.runtime.storage import Storage
from gateway.runtime.storage.history import HistoryStore
from gateway.web.keys import GATEWAY
from gateway.web.server import GatewayRunner
from simulator import Simulator
from tests.helpers import SECRET, SITE_ID, eventually, token
from tests.integration.brokers import RunningBroker, mqtt_broker
from tests.integration.conftest import GatewayFactory
from tests.integration.test_uplink import BASE, GW, uplink_config

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
TOPICS = Topics(BASE)


async def _create_db(name: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_db(name: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def hub_db() -> Iterator[str]:
    """A PostgreSQL database of this test session (created and dropped here)."""
    name = f"egw_hub_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_db(name))
    yield f"{PG}/{name}"
    asyncio.run(_drop_db(name))


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test; its keys are deleted afterwards."""
    prefix = f"egw-hub-test-{uuid.uuid4().hex[:12]}:"
    yield prefix

    async def clean() -> None:
        client = aioredis.Redis.from_url(REDIS)
        try:
            async for key in client.scan_iter(match=f"{prefix}*"):
                await client.delete(key)
        finally:
            await client.aclose()

    asyncio.run(clean())


async def _reset(dsn: str) -> None:
    # one database per session: each test starts from empty hub tables
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('hub_sites') IS NOT NULL")
        if exists:
            await conn.execute("TRUNCATE hub_gateways, hub_sites, hub_commands, hub_energy_5min, "
                               "hub_energy_1h")
    finally:
        await conn.close()


def hub_config(broker: RunningBroker, dsn: str, prefix: str, *, plans: dict[str, Plan] | None = None,
               timeout_s: float = 5.0, secret: str = SECRET) -> HubConfig:
    return HubConfig(hub=HubSection(
        port=0, jwt_secret=secret, postgres_dsn=dsn, redis_url=REDIS, redis_prefix=prefix,
        rate_limits=RateLimits(plans=plans) if plans else RateLimits(),
        mqtt=MqttLink(host=broker.host, port=broker.port, base_topic=BASE),
        command_timeout_s=timeout_s, shared_group=f"g{uuid.uuid4().hex[:8]}"))


class Replica:
    def __init__(self, url: str, app: web.Application) -> None:
        self.url = url
        self.app = app


@asynccontextmanager
async def replica(config: HubConfig) -> AsyncIterator[Replica]:
    app = create_hub_app(config)
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        running = Replica(f"http://{host}:{port}", app)
        await eventually(app[INGEST].connected.is_set)
        yield running
    finally:
        await runner.cleanup()


def _auth(**kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(**kwargs)}"}


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                headers: dict[str, str]) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_command_through_the_hub_reaches_the_device_once(
    sim: Simulator, tmp_path: Path, start_gateway: GatewayFactory, hub_db: str,
    redis_prefix: str, http: aiohttp.ClientSession,
) -> None:
    await _reset(hub_db)
    home = sim.homes["home-1001"]
    auth = _auth()
    async with mqtt_broker() as broker:
        config = hub_config(broker, hub_db, redis_prefix)
        async with replica(config) as a, replica(config) as b, \
                start_gateway(uplink_config(sim, tmp_path / "data", broker)) as edge:
            live_url = f"{a.url}/api/1/energy_sites/{SITE_ID}/live_status"
            status, live = await eventually(lambda: _get(http, live_url, auth),
                                            lambda r: r[0] == 200, timeout=15)
            assert {"solar_power", "battery_power", "grid_power", "load_power"} <= set(live["response"])
            status, products = await _get(http, f"{b.url}/api/1/products", auth)
            assert status == 200
            assert [p["energy_site_id"] for p in products["response"]] == [SITE_ID]
            # the same site_info shape as the edge's own
            _, hub_info = await eventually(
                lambda: _get(http, f"{b.url}/api/1/energy_sites/{SITE_ID}/site_info", auth),
                lambda r: r[0] == 200)
            _, edge_info = await _get(http, f"{edge.url}/api/1/energy_sites/{SITE_ID}/site_info", auth)
            assert set(hub_info["response"]) == set(edge_info["response"])

            key = {"Idempotency-Key": "client-cmd-1", **auth}
            url = f"{a.url}/api/1/energy_sites/{SITE_ID}/backup"
            status, body = await _post(http, url, {"backup_reserve_percent": 41}, key)
            assert (status, body) == (200, {"response": {"code": 201, "message": "Updated"}})
            await eventually(lambda: home.truth().reserve_pct == 41)
            # a client retry, to either replica: the recorded answer, not a second application
            status, body = await _post(http, f"{b.url}/api/1/energy_sites/{SITE_ID}/backup",
                                       {"backup_reserve_percent": 41}, key)
            assert status == 200
            uplink = edge.app[GATEWAY].uplink
            assert uplink is not None
            assert uplink.counters["commands_run"] == 1
            # the same key for another command is refused
            status, body = await _post(http, url, {"backup_reserve_percent": 50}, key)
            assert status == 422, body
            # a body the edge would refuse is refused by the hub, with the same error
            status, body = await _post(http, url, {"backup_reserve_percent": 140}, auth)
            assert status == 400
            assert body["error"] == "invalid_field"
            # the hub's view of the settings follows the edge's
            await eventually(
                lambda: _get(http, f"{a.url}/api/1/energy_sites/{SITE_ID}/site_info", auth),
                lambda r: r[1]["response"]["backup_reserve_percent"] == 41)
            status, health = await _get(http, f"{a.url}/health", {})
            assert health["response"]["gateways"][0]["gateway_id"] == GW
            assert health["response"]["gateways"][0]["online"] is True

        # the edge stopped: its presence says offline, so the hub answers 408 without waiting
        async with replica(config) as a:
            started = time.monotonic()
            status, body = await _post(http, f"{a.url}/api/1/energy_sites/{SITE_ID}/backup",
                                       {"backup_reserve_percent": 30}, auth)
            assert status == 408, body
            assert GW in body["error_description"]
            assert time.monotonic() - started < 2.0
            status, _ = await _get(http, f"{a.url}/api/1/energy_sites/{SITE_ID}/live_status", auth)
            assert status == 408


async def _fake_gateway(client: aiomqtt.Client, gateway_id: str, site_id: int) -> None:
    """A gateway that says it is online and describes a site, then never answers commands."""
    now = time.time()
    await client.publish(TOPICS.presence(gateway_id), encode(Presence(
        gateway_id=gateway_id, online=True, sites=[site_id], at=now)), qos=1, retain=True)
    await client.publish(TOPICS.info(gateway_id, site_id), encode(SiteInfoMessage(
        site_id=site_id, products={"energy_site_id": site_id}, site_info={"id": "x"}, at=now)),
        qos=1, retain=True)


async def test_no_outcome_is_504_then_recorded_and_bad_messages_are_dropped(
    tmp_path: Path, hub_db: str, redis_prefix: str, http: aiohttp.ClientSession,
) -> None:
    await _reset(hub_db)
    auth = _auth()
    async with mqtt_broker() as broker:
        config = hub_config(broker, hub_db, redis_prefix, timeout_s=1.0)
        async with replica(config) as a, replica(config) as b, aiomqtt.Client(
                broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as fake:
            await fake.subscribe(TOPICS.commands("edge-z"), qos=1)
            await _fake_gateway(fake, "edge-z", 5005)
            await eventually(lambda: _get(http, f"{a.url}/api/1/energy_sites/5005/site_info", auth),
                             lambda r: r[0] == 200)
            key = {"Idempotency-Key": "slow-1", **auth}
            status, body = await _post(http, f"{a.url}/api/1/energy_sites/5005/backup",
                                       {"backup_reserve_percent": 20}, key)
            assert status == 504, body
            assert "slow-1" in body["error_description"]
            async with asyncio.timeout(5):
                sent = await anext(aiter(fake.messages))
            assert b'"command_id":"slow-1"' in bytes(sent.payload)
            # an hour on, the sweep closes the unanswered entry as the 504 the client got ...
            store = a.app[STORE]
            assert await store.sweep(time.time() + 3600, 504, {"response": None}) == 1
            swept = await store.command("slow-1")
            assert swept is not None
            assert swept.status == 504
            # ... and the outcome that arrives late replaces it: recorded, and a retry reads it
            await fake.publish(TOPICS.outcomes("edge-z"), encode(OutcomeMessage(
                command_id="slow-1", site_id=5005, command="backup", status=200,
                body={"response": {"code": 201, "message": "Updated"}}, at=time.time())), qos=1)
            status, body = await eventually(
                lambda: _post(http, f"{b.url}/api/1/energy_sites/5005/backup",
                              {"backup_reserve_percent": 20}, key),
                lambda r: r[0] == 200, timeout=10)
            assert body == {"response": {"code": 201, "message": "Updated"}}

            def counters() -> dict[str, int]:
                total: dict[str, int] = {}
                for app in (a.app, b.app):
                    for name, n in app[INGEST].counters.items():
                        total[name] = total.get(name, 0) + n
                return total

            # malformed, unknown site, unsolicited outcome, someone else's namespace
            await fake.publish(TOPICS.live("edge-z", 5005), b"{\"v\": 1, \"site_id\": ", qos=1)
            await fake.publish(TOPICS.live("edge-z", 4242), encode(LiveMessage(
                site_id=4242, seq=1, live_status={}, at=time.time())), qos=1)
            await fake.publish(TOPICS.outcomes("edge-z"), encode(OutcomeMessage(
                command_id="nobody-asked", site_id=5005, command="backup", status=200,
                body={}, at=time.time())), qos=1)
            await fake.publish(TOPICS.presence("edge-z"), encode(Presence(
                gateway_id="edge-y", online=True, sites=[5005], at=time.time())), qos=1)
            await eventually(lambda: counters().get("dropped_malformed", 0) >= 1
                             and counters().get("dropped_unknown_site", 0) >= 1
                             and counters().get("dropped_unsolicited", 0) >= 1
                             and counters().get("dropped_foreign_namespace", 0) >= 1)
            # a second gateway claims the same site: ignored, named in /health, the site refused
            await _fake_gateway(fake, "edge-w", 5005)
            _, health = await eventually(lambda: _get(http, f"{a.url}/health", {}),
                                         lambda r: r[1]["response"]["conflicts"])
            assert health["response"]["conflicts"] == [{"site_id": 5005, "gateways": ["edge-z", "edge-w"]}]
            status, body = await _get(http, f"{a.url}/api/1/energy_sites/5005/site_info", auth)
            assert status == 503
            assert "edge-z" in body["error_description"]
            assert "edge-w" in body["error_description"]
            # a command for it is refused alike, and one for a site nobody claimed is 404
            status, body = await _post(http, f"{a.url}/api/1/energy_sites/5005/backup",
                                       {"backup_reserve_percent": 30}, auth)
            assert status == 503
            assert "edge-w" in body["error_description"]
            assert (await _post(http, f"{a.url}/api/1/energy_sites/4242/backup",
                                {"backup_reserve_percent": 30}, auth))[0] == 404
            # an operator settles it (scope hub_admin): edge-w owns the site from now on
            owner_url = f"{a.url}/api/1/hub/sites/5005/owner"
            assert (await _post(http, owner_url, {"gateway_id": "edge-w"}, auth))[0] == 403
            admin = _auth(scopes=("hub_admin",))
            status, body = await _post(http, owner_url, {"gateway_id": "edge-q"}, admin)
            assert status == 400
            assert "edge-q has not claimed site 5005" in body["error_description"]
            assert (await _post(http, f"{a.url}/api/1/hub/sites/4242/owner",
                                {"gateway_id": "edge-w"}, admin))[0] == 404
            status, body = await _post(http, owner_url, {"gateway_id": "edge-w"}, admin)
            assert status == 200, body
            assert body["response"]["previous"] == {"owner": "edge-z", "conflict": "edge-w"}
            _, health = await _get(http, f"{a.url}/health", {})
            assert health["response"]["conflicts"] == []
            # the new owner's description is taken (the old owner's was dropped)
            await _fake_gateway(fake, "edge-w", 5005)
            await eventually(lambda: _get(http, f"{a.url}/api/1/energy_sites/5005/site_info", auth),
                             lambda r: r[0] == 200)


async def test_rate_limits_hold_across_replicas(
    tmp_path: Path, hub_db: str, redis_prefix: str, http: aiohttp.ClientSession,
) -> None:
    await _reset(hub_db)
    plans = {"standard": Plan(per_minute=1000, per_day=6)}
    auth = _auth()
    async with mqtt_broker() as broker:
        config = hub_config(broker, hub_db, redis_prefix, plans=plans)
        async with replica(config) as a, replica(config) as b:
            statuses = []
            for i in range(8):
                url = (a if i % 2 == 0 else b).url + "/api/1/products"
                async with http.get(url, headers=auth) as resp:
                    statuses.append(resp.status)
                    if resp.status == 429:
                        assert int(resp.headers["Retry-After"]) >= 1
            assert statuses == [200] * 6 + [429, 429]


async def _seed_history(data_dir: Path, buckets: list[Bucket],
                        outages: tuple[tuple[datetime, datetime], ...] = ()) -> None:
    async with Storage.in_data_dir(data_dir) as storage:
        store = HistoryStore(storage)
        await store.add_buckets(SITE_ID, buckets)
        for start, end in outages:
            await store.open_outage(SITE_ID, start)
            await store.close_outage(SITE_ID, end)


async def test_history_reaches_the_hub_once_and_reads_as_on_the_edge(
    sim: Simulator, tmp_path: Path, start_gateway: GatewayFactory, hub_db: str,
    redis_prefix: str, http: aiohttp.ClientSession,
) -> None:
    await _reset(hub_db)
    data_dir = tmp_path / "data"
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    seeded = [Bucket(day + timedelta(minutes=5 * i), FlowEnergy(10.0 + i, 2, 1, 3, 0, 5, 0.5))
              for i in range(30)]  # two and a half hours: whole hours and ragged ends
    outages = ((day + timedelta(minutes=20), day + timedelta(minutes=47)),
               (day + timedelta(hours=3), day + timedelta(hours=3, seconds=90)))
    await _seed_history(data_dir, seeded, outages)
    auth = _auth()
    query = f"kind=energy&period=day&end_date={(day + timedelta(hours=12)).isoformat()}"
    query = query.replace("+", "%2B")
    backup = query.replace("kind=energy", "kind=backup")
    async with mqtt_broker() as broker:
        config = hub_config(broker, hub_db, redis_prefix)
        async with replica(config) as a:
            store = a.app[STORE]
            async with start_gateway(uplink_config(sim, data_dir, broker)) as edge:
                await eventually(lambda: store.bucket_count(SITE_ID), lambda n: n == 30, timeout=15)
                path = f"/api/1/energy_sites/{SITE_ID}/calendar_history?{query}"
                _, on_edge = await _get(http, edge.url + path, auth)
                _, on_hub = await eventually(lambda: _get(http, a.url + path, auth),
                                             lambda r: r[0] == 200)
                assert on_hub == on_edge
                assert sum(e["solar_energy_exported"] for e in on_hub["response"]["time_series"]) > 0
                # grid outages too (kind=backup), as the edge answers them
                path = f"/api/1/energy_sites/{SITE_ID}/calendar_history?{backup}"
                _, outages_on_edge = await _get(http, edge.url + path, auth)
                assert [e["duration"] for e in outages_on_edge["response"]["events"]] == [1620, 90]
                _, outages_on_hub = await eventually(lambda: _get(http, a.url + path, auth),
                                                     lambda r: r[0] == 200 and r[1]["response"]["events"])
                assert outages_on_hub == outages_on_edge
                path = f"/api/1/energy_sites/{SITE_ID}/calendar_history?{query}"
            # the cursor lost (a restored backup): everything is sent again, nothing doubles
            async with Storage.in_data_dir(data_dir) as storage:
                await storage.write(lambda db: db.execute("DELETE FROM uplink_history_sent"))
            async with start_gateway(uplink_config(sim, data_dir, broker)) as edge:
                uplink = edge.app[GATEWAY].uplink
                assert uplink is not None
                await eventually(lambda: uplink.counters["history_buckets_published"] >= 30)
                await eventually(lambda: a.app[INGEST].counters["stored_history"] >= 2)
                assert await store.bucket_count(SITE_ID) == 30
                _, again = await _get(http, a.url + path, auth)
                assert again == on_edge


async def test_a_replica_lost_mid_command_loses_nothing(
    tmp_path: Path, hub_db: str, redis_prefix: str, http: aiohttp.ClientSession,
) -> None:
    await _reset(hub_db)
    auth = _auth()
    key = {"Idempotency-Key": "in-flight-1", **auth}
    body = {"backup_reserve_percent": 25}
    async with mqtt_broker() as broker:
        config = hub_config(broker, hub_db, redis_prefix, timeout_s=2.0)
        async with replica(config) as b, aiomqtt.Client(
                broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as fake:
            await fake.subscribe(TOPICS.commands("edge-z"), qos=1)
            await _fake_gateway(fake, "edge-z", 5005)
            async with replica(config) as a:
                await eventually(lambda: _get(http, f"{a.url}/api/1/energy_sites/5005/site_info", auth),
                                 lambda r: r[0] == 200)
                pending = asyncio.create_task(
                    _post(http, f"{a.url}/api/1/energy_sites/5005/backup", body, key))
                async with asyncio.timeout(5):
                    first = await anext(aiter(fake.messages))
                assert b'"command_id":"in-flight-1"' in bytes(first.payload)
            # replica a is gone with the client's request in flight: it never saw an outcome
            try:
                lost = await pending
            except aiohttp.ClientError:
                pass
            else:
                assert lost[0] != 200, lost
            # the edge answers; replica b records it; the client's retry reads it, not re-sent
            await fake.publish(TOPICS.outcomes("edge-z"), encode(OutcomeMessage(
                command_id="in-flight-1", site_id=5005, command="backup", status=200,
                body={"response": {"code": 201, "message": "Updated"}}, at=time.time())), qos=1)
            _, answer = await eventually(
                lambda: _post(http, f"{b.url}/api/1/energy_sites/5005/backup", body, key),
                lambda r: r[0] == 200, timeout=10)
            assert answer == {"response": {"code": 201, "message": "Updated"}}
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await anext(aiter(fake.messages))


async def test_a_command_the_broker_cannot_take_is_503_then_sent_on_retry(
    hub_db: str, redis_prefix: str, http: aiohttp.ClientSession,
) -> None:
    await _reset(hub_db)
    auth = _auth()
    key = {"Idempotency-Key": "no-broker-1", **auth}
    body = {"backup_reserve_percent": 33}
    async with mqtt_broker() as broker:
        config = hub_config(broker, hub_db, redis_prefix, timeout_s=3.0)
        async with replica(config) as a:
            url = f"{a.url}/api/1/energy_sites/5005/backup"
            async with aiomqtt.Client(broker.host, broker.port,
                                      protocol=aiomqtt.ProtocolVersion.V5) as fake:
                await _fake_gateway(fake, "edge-z", 5005)
                await eventually(lambda: _get(http, f"{a.url}/api/1/energy_sites/5005/site_info",
                                              auth), lambda r: r[0] == 200)
            # the broker is gone; the gateway's presence (in PostgreSQL) still says online
            await broker.stop()
            await eventually(lambda: not a.app[INGEST].connected.is_set())
            status, answer = await _post(http, url, body, key)
            assert status == 503, answer
            assert "no-broker-1" in answer["error_description"]
            # back: the retry with the same key sends it, and the edge's outcome answers it
            await broker.restart()
            await eventually(a.app[INGEST].connected.is_set, timeout=15)
            async with aiomqtt.Client(broker.host, broker.port,
                                      protocol=aiomqtt.ProtocolVersion.V5) as fake:
                await fake.subscribe(TOPICS.commands("edge-z"), qos=1)
                retry = asyncio.create_task(_post(http, url, body, key))
                async with asyncio.timeout(5):
                    sent = await anext(aiter(fake.messages))
                assert b'"command_id":"no-broker-1"' in bytes(sent.payload)
                await fake.publish(TOPICS.outcomes("edge-z"), encode(OutcomeMessage(
                    command_id="no-broker-1", site_id=5005, command="backup", status=200,
                    body={"response": {"code": 201, "message": "Updated"}}, at=time.time())), qos=1)
                assert await retry == (200, {"response": {"code": 201, "message": "Updated"}})


async def test_a_retry_of_an_unsettled_outcome_is_sent_again_a_settled_one_replayed(
    hub_db: str, redis_prefix: str, http: aiohttp.ClientSession,
) -> None:
    await _reset(hub_db)
    auth = _auth()
    body = {"backup_reserve_percent": 27}
    unavailable = {"response": None, "error": "service_unavailable",
                   "error_description": "the gateway restarted while running this command"}
    updated = {"response": {"code": 201, "message": "Updated"}}
    async with mqtt_broker() as broker:
        config = hub_config(broker, hub_db, redis_prefix, timeout_s=3.0)
        async with replica(config) as a, aiomqtt.Client(
                broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as fake:
            await fake.subscribe(TOPICS.commands("edge-z"), qos=1)
            await _fake_gateway(fake, "edge-z", 5005)
            url = f"{a.url}/api/1/energy_sites/5005/backup"
            await eventually(lambda: _get(http, f"{a.url}/api/1/energy_sites/5005/site_info", auth),
                             lambda r: r[0] == 200)
            key = {"Idempotency-Key": "unsettled-1", **auth}

            async def answered(status: int, answer: dict[str, Any]) -> tuple[int, Any]:
                request = asyncio.create_task(_post(http, url, body, key))
                async with asyncio.timeout(5):
                    sent = await anext(aiter(fake.messages))
                assert b'"command_id":"unsettled-1"' in bytes(sent.payload)
                await fake.publish(TOPICS.outcomes("edge-z"), encode(OutcomeMessage(
                    command_id="unsettled-1", site_id=5005, command="backup", status=status,
                    body=answer, at=time.time())), qos=1)
                return await request

            assert await answered(503, unavailable) == (503, unavailable)
            assert await answered(200, updated) == (200, updated)  # sent again, not replayed
            # settled: the retry is answered from the journal, nothing is sent
            assert await _post(http, url, body, key) == (200, updated)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await anext(aiter(fake.messages))


async def test_hub_tokens_are_recorded_listed_and_revoked(
    tmp_path: Path, hub_db: str, redis_prefix: str, http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _reset(hub_db)
    secret = "hub-test-secret-0123456789abcdefghijkl"
    path = tmp_path / "hub.yaml"
    path.write_text(f"hub:\n  jwt_secret: {secret}\n  postgres_dsn: {hub_db}\n"
                    "  rate_limits:\n    plans: {standard: {per_minute: 60}, small: {per_minute: 5}}\n"
                    f"  mqtt: {{host: 127.0.0.1, port: 1883, base_topic: {BASE}}}\n")

    def cli_run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await asyncio.to_thread(
        cli_run, "token", "issue", "--config", str(path), "--sub", "vpp-dispatch", "--scopes",
        "energy_device_data,energy_cmds", "--sites", "5005,1001", "--plan", "small")
    assert code == 0
    issued = out.strip()
    claims = jwt.decode(issued, secret, algorithms=["HS256"])
    assert (claims["sites"], claims["plan"]) == ([1001, 5005], "small")
    code, _, err = await asyncio.to_thread(cli_run, "token", "issue", "--config", str(path),
                                           "--scopes", "energy_cmds", "--plan", "gold")
    assert code == 2
    assert "unknown plan" in err
    code, out, _ = await asyncio.to_thread(cli_run, "token", "list", "--config", str(path))
    assert code == 0
    assert claims["jti"] in out
    assert "vpp-dispatch" in out
    assert issued not in out  # the registry keeps claims, never the token

    async with mqtt_broker() as broker:
        async with replica(hub_config(broker, hub_db, redis_prefix, secret=secret)) as a:
            url = f"{a.url}/api/1/products"
            bearer = {"Authorization": f"Bearer {issued}"}
            assert (await _get(http, url, bearer))[0] == 200
            code, out, _ = await asyncio.to_thread(
                cli_run, "token", "revoke", "--config", str(path), claims["jti"])
            assert code == 0
            assert "hub replica refuses it" in out
            _, body = await eventually(lambda: _get(http, url, bearer), lambda r: r[0] == 401)
            assert "revoked" in body["error_description"]
            code, _, err = await asyncio.to_thread(
                cli_run, "token", "revoke", "--config", str(path), "no-such-jti")
            assert code == 2
            assert "no token with jti" in err


async def test_charging_sessions_reach_the_hub_and_read_as_on_the_edge(
    sim: Simulator, tmp_path: Path, start_gateway: GatewayFactory, hub_db: str,
    redis_prefix: str, http: aiohttp.ClientSession,
) -> None:
    from gateway.core.config.chargers import ChargePointConfig, OcppSection
    from gateway.runtime.storage.charging import ChargeStore

    await _reset(hub_db)
    data_dir = tmp_path / "data"
    async with Storage.in_data_dir(data_dir) as storage:  # two finished sessions, yesterday
        charges = ChargeStore(storage)
        begin = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        for n, (minutes, wh) in enumerate(((95, 11_500.0), (20, 2_400.0))):
            started = begin + timedelta(hours=3 * n)
            tx, _ = await charges.start(site_id=SITE_ID, charge_point_id="WC-1", connector_id=1,
                                        id_tag="tag", stamped_start=started.isoformat(),
                                        started_at=started, meter_start_wh=1000.0 * n)
            await charges.stop(charge_point_id="WC-1", transaction_id=tx,
                               stopped_at=started + timedelta(minutes=minutes),
                               meter_stop_wh=1000.0 * n + wh, reason="EVDisconnected")
    auth = _auth()
    path = f"/api/1/energy_sites/{SITE_ID}/telemetry_history?kind=charge"
    async with mqtt_broker() as broker:
        base = uplink_config(sim, data_dir, broker)
        site = base.sites[0].model_copy(update={"chargers": [ChargePointConfig(id="WC-1")]})
        config = base.model_copy(update={
            "sites": [site], "gateway": base.gateway.model_copy(update={"ocpp": OcppSection(port=0)})})
        async with replica(hub_config(broker, hub_db, redis_prefix)) as a, \
                start_gateway(config) as edge:
            _, on_edge = await _get(http, edge.url + path, auth)
            assert [s["energy_added_wh"] for s in on_edge["response"]["charge_history"]] == \
                [11500, 2400]
            _, on_hub = await eventually(lambda: _get(http, a.url + path, auth),
                                         lambda r: r[0] == 200 and r[1]["response"]["charge_history"])
            assert on_hub == on_edge
            status, bad = await _get(http, a.url + path.replace("kind=charge", "kind=power"), auth)
            assert status == 400
            assert "kind" in bad["error_description"]
