"""The edge's uplink: publish its sites to a hub's broker, run the hub's commands, catch up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import aiomqtt
import orjson
import structlog
from pydantic import BaseModel

from gateway.core.config.models import UplinkSection
from gateway.core.history.buckets import BUCKET
from gateway.core.history.flows import FLOW_NAMES
from gateway.core.uplink.contract import (
    MAX_BUCKETS_PER_MESSAGE,
    MAX_OUTAGES_PER_MESSAGE,
    OUTAGE_WINDOW_S,
    UNSETTLED,
    ChargeEntry,
    ChargesMessage,
    CommandMessage,
    ContractError,
    HistoryBucket,
    HistoryMessage,
    LiveMessage,
    OutageEntry,
    OutagesMessage,
    OutcomeMessage,
    Presence,
    SiteInfoMessage,
    Topics,
    decode,
    encode,
)
from gateway.runtime import mqtt_link
from gateway.runtime.clock import Timebase
from gateway.runtime.site import Site
from gateway.runtime.storage.charging import ChargeStore
from gateway.runtime.storage.history import HistoryStore
from gateway.runtime.storage.uplink import REMEMBER_S, UplinkStore

log = structlog.get_logger("gateway.runtime.uplink")

_SCAN_S = 0.2  # how often sites are checked for a changed live_status (real seconds)
_HISTORY_EVERY_S = 10.0  # closed buckets are looked for this often (real seconds)
_INFO_EVERY_S = 5.0  # site_info re-rendered this often; published when it changed
_INFO_FORCE_EVERY_S = 600.0  # and published anyway this often (a hub that dropped it, e.g. while
# an operator settled which gateway owns the site, has it again within this)
_MAX_INFLIGHT = 64  # commands running at once; more wait for a slot (QoS 1 holds them)
_HISTORY_BACKFILL = timedelta(days=7)  # a first connection sends at most this much history
_INTERRUPTED_BODY = {"response": None, "error": "service_unavailable",
                     "error_description": "the gateway restarted while running this command; "
                                          "read site_info to see what holds"}


class UplinkBridge(Protocol):
    """What the uplink needs from the HTTP edge: Fleet bodies and the command pipeline.

    The web floor implements it (``gateway/web/uplink_bridge.py``): the uplink publishes the
    same bodies and statuses a local request would get.
    """

    def products(self, site: Site) -> dict[str, Any]:
        """The site's entry of GET /api/1/products."""

    def site_info(self, site: Site) -> dict[str, Any] | None:
        """site_info's ``response`` (None when it would answer 408)."""

    def live_status(self, site: Site) -> tuple[dict[str, Any] | None, str | None]:
        """live_status's ``response``, or None and the 408 description."""

    def still_wanted(self, site: Site, command: str, body: dict[str, Any]) -> bool:
        """Whether the site's desired settings still hold what ``command`` asked for."""

    async def run_command(self, site: Site, command: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Validate and run a command as a local POST would: (HTTP status, whole Fleet body)."""


class Uplink:
    """One MQTT session to the hub's broker at a time, re-made with backoff while it runs.

    Publishes presence (retained, last will offline), each site's info (retained) and live
    status (on change, at least every ``live_every_s``), closed history buckets (from a
    persisted cursor) and command outcomes (persisted until the broker acknowledged them).
    ``counters`` counts dropped commands by reason and what was published.
    """

    def __init__(self, config: UplinkSection, sites: Mapping[int, Site], *, store: UplinkStore,
                 history: HistoryStore, bridge: UplinkBridge, timebase: Timebase,
                 charges: ChargeStore | None = None) -> None:
        self.config = config
        self.gateway_id = config.gateway_id
        self.topics = Topics(config.base_topic)
        self.counters: Counter[str] = Counter()
        self.connected = False
        self._sites = sites
        self._store = store
        self._history = history
        self._charges = charges
        self._bridge = bridge
        self._timebase = timebase
        self._client: aiomqtt.Client | None = None
        self._seq = 0
        self._live_sent: dict[int, tuple[bytes, float]] = {}  # site -> (body without time, when)
        self._info_sent: dict[int, bytes] = {}
        self._lists_sent: dict[str, dict[int, list[Any]]] = {}  # kind -> site -> entries
        self._slots = asyncio.Semaphore(_MAX_INFLIGHT)
        self._running: set[asyncio.Task[None]] = set()
        self._log = log.bind(gateway_id=self.gateway_id)

    # ---- the session loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve the session, and reconnect with backoff until cancelled."""
        interrupted = await self._store.close_unfinished(503, orjson.dumps(_INTERRUPTED_BODY).decode())
        if interrupted:
            self._log.warning("uplink.commands_interrupted", commands=interrupted)
        await self._store.forget_before(time.time() - REMEMBER_S)
        pause = 0.0
        try:
            while True:
                try:
                    await self._session()
                except* aiomqtt.MqttError as group:
                    self._log.warning("uplink.disconnected", error=str(group.exceptions[0]))
                except* Exception as group:  # storage or a bug: reconnect rather than stop
                    self._log.error("uplink.session_failed", error=repr(group.exceptions[0]))
                finally:
                    self.connected = False
                    self._client = None
                pause = mqtt_link.next_backoff(pause)
                await asyncio.sleep(pause)
        finally:
            for task in list(self._running):
                task.cancel()
            for task in list(self._running):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _presence(self, *, online: bool) -> bytes:
        return encode(Presence(gateway_id=self.gateway_id, online=online,
                               sites=sorted(self._sites), at=time.time()))

    async def _session(self) -> None:
        topics, gw = self.topics, self.gateway_id
        will = aiomqtt.Will(topics.presence(gw), self._presence(online=False), qos=1, retain=True)
        async with mqtt_link.client(self.config, f"egw-{gw}", will=will, persistent=True) as client:
            self._client = client
            await client.subscribe(topics.commands(gw), qos=1)
            await client.publish(topics.presence(gw), self._presence(online=True), qos=1, retain=True)
            self._info_sent.clear()
            self._live_sent.clear()
            self._lists_sent.clear()
            await self._publish_infos(client)
            self.connected = True
            self._log.info("uplink.connected", broker=f"{self.config.host}:{self.config.port}")
            await self._resend_outcomes(client)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._live_loop(client))
                group.create_task(self._history_loop(client))
                group.create_task(self._info_loop(client))
                group.create_task(self._inbox(client))

    async def stop(self, client: aiomqtt.Client | None = None) -> None:
        """Say offline (retained) before a clean shutdown; the will covers a crash."""
        client = client or self._client
        if client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(self.topics.presence(self.gateway_id),
                                     self._presence(online=False), qos=1, retain=True, timeout=2.0)

    # ---- what the edge publishes ---------------------------------------------------------------

    async def _publish_infos(self, client: aiomqtt.Client) -> None:
        for site in self._sites.values():
            await self._publish_info(client, site)

    async def _publish_info(self, client: aiomqtt.Client, site: Site, *, force: bool = False) -> None:
        products = self._bridge.products(site)
        info = self._bridge.site_info(site)
        key = orjson.dumps([products.get("components"), products.get("storm_mode_enabled"), info],
                           default=str)
        if not force and self._info_sent.get(site.id) == key:
            return
        message = SiteInfoMessage(site_id=site.id, products=products, site_info=info, at=time.time())
        await client.publish(self.topics.info(self.gateway_id, site.id), encode(message),
                             qos=1, retain=True)
        self._info_sent[site.id] = key
        self.counters["info_published"] += 1

    async def _info_loop(self, client: aiomqtt.Client) -> None:
        forced_at = time.monotonic()
        while True:
            await asyncio.sleep(_INFO_EVERY_S)
            force = time.monotonic() - forced_at >= _INFO_FORCE_EVERY_S
            if force:
                forced_at = time.monotonic()
            for site in self._sites.values():
                await self._publish_info(client, site, force=force)

    async def _live_loop(self, client: aiomqtt.Client) -> None:
        versions: dict[int, int] = {}
        every = self.config.live_every_s
        while True:
            now = time.monotonic()
            for site in self._sites.values():
                sent = self._live_sent.get(site.id)
                due = sent is None or now - sent[1] >= every
                if not due and versions.get(site.id) == site.telemetry_version:
                    continue
                versions[site.id] = site.telemetry_version
                body, offline = self._bridge.live_status(site)
                # the reading's timestamp changes on every poll: compare what it says
                same = None if body is None else {k: v for k, v in body.items() if k != "timestamp"}
                key = orjson.dumps([same, offline is not None])
                if not due and sent is not None and sent[0] == key:
                    continue
                self._seq += 1
                message = LiveMessage(site_id=site.id, seq=self._seq, live_status=body,
                                      offline=offline, at=time.time())
                await client.publish(self.topics.live(self.gateway_id, site.id), encode(message),
                                     qos=1, retain=True)
                self._live_sent[site.id] = (key, now)
                self.counters["live_published"] += 1
            await asyncio.sleep(_SCAN_S)

    async def _history_loop(self, client: aiomqtt.Client) -> None:
        while True:
            for site in self._sites.values():
                await self._send_history(client, site)
                await self._send_outages(client, site)
                await self._send_charges(client, site)
            await asyncio.sleep(_HISTORY_EVERY_S)

    async def _send_charges(self, client: aiomqtt.Client, site: Site) -> None:
        """The site's recent finished charging sessions (retained), when they changed."""
        if self._charges is None or not site.config.chargers:
            return
        now = self._timebase.now().timestamp()
        found = await self._charges.sessions(site.id, _dt(now - OUTAGE_WINDOW_S), None,
                                             limit=MAX_OUTAGES_PER_MESSAGE)
        entries = [ChargeEntry(start=c.start.timestamp(), duration_s=c.duration_s,
                               energy_wh=c.energy_wh) for c in found]
        await self._publish_changed(client, "charges", site.id, entries, lambda: ChargesMessage(
            site_id=site.id, sessions=entries, at=time.time()))

    async def _send_outages(self, client: aiomqtt.Client, site: Site) -> None:
        """The site's recent outages (retained), when they differ from what this session sent."""
        now = self._timebase.now().timestamp()
        found = await self._history.outages(site.id, _dt(now - OUTAGE_WINDOW_S), _dt(now + 86_400))
        entries = [OutageEntry(start=o.start.timestamp(),
                               end=None if o.end is None else o.end.timestamp())
                   for o in found][-MAX_OUTAGES_PER_MESSAGE:]
        await self._publish_changed(client, "outages", site.id, entries, lambda: OutagesMessage(
            site_id=site.id, outages=entries, at=time.time()))

    async def _publish_changed(self, client: aiomqtt.Client, kind: Literal["outages", "charges"],
                               site_id: int, entries: list[Any],
                               message: Callable[[], BaseModel]) -> None:
        """Publish a site's ``kind`` list (retained) unless this session sent the same one (an
        empty list, never sent, is not sent either)."""
        sent = self._lists_sent.setdefault(kind, {})
        if sent.get(site_id, []) == entries:
            sent[site_id] = entries
            return
        topic = getattr(self.topics, kind)(self.gateway_id, site_id)
        await client.publish(topic, encode(message()), qos=1, retain=True)
        sent[site_id] = entries
        self.counters[f"{kind}_published"] += 1

    async def _send_history(self, client: aiomqtt.Client, site: Site) -> None:
        """Closed buckets after the persisted cursor, in batches, the cursor moved after each."""
        size = BUCKET.total_seconds()
        now = self._timebase.now().timestamp()
        # a bucket is closed once its end has passed and the recorder has flushed it
        margin = self._timebase.domain_span_s(2 * _HISTORY_EVERY_S)
        closed_until = (now - margin) // size * size
        sent = await self._store.history_sent_until(site.id)
        start = sent if sent is not None else closed_until - _HISTORY_BACKFILL.total_seconds()
        while start < closed_until:
            end = min(closed_until, start + MAX_BUCKETS_PER_MESSAGE * size)
            buckets = await self._history.buckets(site.id, _dt(start), _dt(end))
            if buckets:
                message = HistoryMessage(site_id=site.id, buckets=[
                    HistoryBucket(start=b.start.timestamp(),
                                  **dict(zip(FLOW_NAMES, b.energy.values(), strict=True))) for b in buckets])
                await client.publish(self.topics.history(self.gateway_id, site.id), encode(message),
                                     qos=1)
                self.counters["history_buckets_published"] += len(buckets)
            await self._store.history_sent(site.id, end)
            start = end

    # ---- commands ------------------------------------------------------------------------------

    async def _inbox(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                command = decode("commands", bytes(message.payload))
            except ContractError as exc:
                self._drop("malformed", str(message.topic), str(exc))
                continue
            if isinstance(command, CommandMessage):
                await self._take(client, command)

    def _drop(self, reason: str, source: str, detail: str) -> None:
        self.counters[f"dropped_{reason}"] += 1
        self._log.warning("uplink.command_dropped", reason=reason, source=source, detail=detail)

    async def _take(self, client: aiomqtt.Client, command: CommandMessage) -> None:
        site = self._sites.get(command.site_id)
        if site is None:
            self._drop("unknown_site", command.command_id, f"site {command.site_id} is not here")
            return
        if command.expires_at < time.time():
            self._drop("expired", command.command_id, f"expired at {command.expires_at:.3f}")
            return
        seen = await self._store.take(command.command_id, site.id, command.command, time.time())
        if seen is not None and seen.status in UNSETTLED and \
                self._bridge.still_wanted(site, command.command, command.body) and \
                await self._store.retake(command.command_id, seen.status, time.time()):
            # a retry of a command that did not settle (a restart interrupted it, the device was
            # away): its setting is still the wanted one, so confirm it again on the device; one
            # a newer command superseded is answered as before, never re-applied over the newer
            self.counters["retries_rerun"] += 1
            self._log.info("uplink.command_rerun", command_id=command.command_id,
                           earlier_status=seen.status)
            seen = None
        if seen is not None:
            self.counters["duplicates"] += 1
            self._log.info("uplink.duplicate_command", command_id=command.command_id,
                           answered=seen.status is not None)
            if seen.status is not None and seen.body is not None:
                await self._publish_outcome(client, OutcomeMessage(
                    command_id=command.command_id, site_id=site.id, command=seen.command,
                    status=seen.status, body=orjson.loads(seen.body), at=time.time()))
            return  # still running: its outcome follows
        await self._slots.acquire()
        task = asyncio.create_task(self._run(command, site), name=f"uplink-{command.command_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, command: CommandMessage, site: Site) -> None:
        try:
            status, body = await self._bridge.run_command(site, command.command, command.body)
            await self._store.finish(command.command_id, status, orjson.dumps(body).decode())
            self.counters["commands_run"] += 1
            client = self._client
            if client is not None and self.connected:
                with contextlib.suppress(aiomqtt.MqttError):  # resent on the next connection
                    await self._publish_outcome(client, OutcomeMessage(
                        command_id=command.command_id, site_id=site.id, command=command.command,
                        status=status, body=body, at=time.time()))
                    if status < 300:
                        await self._publish_info(client, site)
        finally:
            self._slots.release()

    async def _publish_outcome(self, client: aiomqtt.Client, message: OutcomeMessage) -> None:
        await client.publish(self.topics.outcomes(self.gateway_id), encode(message), qos=1)
        await self._store.published(message.command_id)
        self.counters["outcomes_published"] += 1

    async def _resend_outcomes(self, client: aiomqtt.Client) -> None:
        for seen in await self._store.unpublished():
            if seen.status is not None and seen.body is not None:  # the query's condition
                await self._publish_outcome(client, OutcomeMessage(
                    command_id=seen.command_id, site_id=seen.site_id, command=seen.command,
                    status=seen.status, body=orjson.loads(seen.body), at=time.time()))


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
