"""The hub's broker session: takes every gateway's uplink messages into PostgreSQL, sends commands."""

from __future__ import annotations

import asyncio
import contextlib
import os
import zlib
from collections import Counter
from typing import Any

import aiomqtt
import structlog

from gateway.core.config.hub import HubSection
from gateway.core.uplink.contract import (
    ChargesMessage,
    CommandMessage,
    ContractError,
    HistoryMessage,
    LiveMessage,
    OutagesMessage,
    OutcomeMessage,
    Presence,
    SiteInfoMessage,
    Topics,
    decode,
    encode,
)
from gateway.hub.db import HubStore
from gateway.runtime import mqtt_link

log = structlog.get_logger("gateway.hub.ingest")

_WORKERS = 8  # messages are stored by this many tasks, a gateway's always by the same one
_QUEUE = 2_000  # per worker; beyond it the broker's flow control holds the rest


class NotConnected(Exception):
    """The hub has no broker connection right now."""


Outcome = tuple[int, dict[str, Any]]


class Waiters:
    """This replica's clients waiting for command outcomes, by command id."""

    def __init__(self) -> None:
        self._futures: dict[str, list[asyncio.Future[Outcome]]] = {}

    def wait(self, command_id: str) -> asyncio.Future[Outcome]:
        """A future resolved with (status, body) when this replica takes the command's outcome."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(command_id, []).append(future)
        return future

    def forget(self, command_id: str, future: asyncio.Future[Outcome]) -> None:
        """Stop waiting (timed out or answered)."""
        waiting = self._futures.get(command_id)
        if waiting is not None:
            with contextlib.suppress(ValueError):
                waiting.remove(future)
            if not waiting:
                del self._futures[command_id]

    def resolve(self, command_id: str, status: int, body: dict[str, Any]) -> None:
        """Answer everyone here waiting for ``command_id``."""
        for future in self._futures.pop(command_id, []):
            if not future.done():
                future.set_result((status, body))


class Ingest:
    """One broker session at a time (re-made with backoff) and the workers storing what arrives.

    Presence, site info, outages and charging sessions are subscribed by every replica
    (retained messages are not sent to shared subscriptions), and so are outcomes: the replica
    whose client waits for one takes it straight from the broker, with no hop through another
    replica (each records it; the journal keeps the first). Live status and history come through
    a shared subscription when ``shared_group`` is set, so each is stored by one replica.
    ``counters`` counts messages stored and dropped by reason.
    """

    def __init__(self, section: HubSection, store: HubStore, waiters: Waiters) -> None:
        self.section = section
        self.topics = Topics(section.mqtt.base_topic)
        self.counters: Counter[str] = Counter()
        self.connected = asyncio.Event()
        self._store = store
        self._waiters = waiters
        self._client: aiomqtt.Client | None = None
        self._queues: list[asyncio.Queue[aiomqtt.Message]] = [
            asyncio.Queue(_QUEUE) for _ in range(_WORKERS)]
        self._id = f"egw-hub-{os.getpid()}-{os.urandom(3).hex()}"

    def filters(self) -> list[str]:
        """The subscriptions of one replica."""
        base = self.topics.base
        group = self.section.shared_group
        shared = f"$share/{group}/" if group else ""
        return [f"{base}/+/presence", f"{base}/+/sites/+/info", f"{base}/+/sites/+/outages",
                f"{base}/+/sites/+/charges",
                f"{shared}{base}/+/sites/+/live", f"{shared}{base}/+/sites/+/history",
                f"{base}/+/outcomes"]

    async def publish_command(self, gateway_id: str, message: CommandMessage) -> None:
        """Send a command to its gateway (QoS 1, acknowledged by the broker)."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise NotConnected("the hub is not connected to its broker")
        try:
            await client.publish(self.topics.commands(gateway_id), encode(message), qos=1, timeout=5.0)
        except aiomqtt.MqttError as exc:
            raise NotConnected(f"the broker did not take the command: {exc}") from exc

    async def run(self) -> None:
        """Connect, subscribe and dispatch until cancelled; reconnect with backoff."""
        workers = [asyncio.create_task(self._worker(q), name=f"hub-ingest-{i}")
                   for i, q in enumerate(self._queues)]
        pause = 0.0
        try:
            while True:
                try:
                    async with mqtt_link.client(self.section.mqtt, self._id) as client:
                        self._client = client
                        for topic_filter in self.filters():
                            await client.subscribe(topic_filter, qos=1)
                        self.connected.set()
                        pause = 0.0
                        log.info("hub.broker_connected", filters=len(self.filters()))
                        async for message in client.messages:
                            # one gateway's messages in order (presence before its sites)
                            gateway = str(message.topic)[len(self.topics.base):].split("/", 2)[1:2]
                            queue = self._queues[zlib.crc32("".join(gateway).encode()) % _WORKERS]
                            await queue.put(message)
                except aiomqtt.MqttError as exc:
                    log.warning("hub.broker_lost", error=str(exc))
                finally:
                    self.connected.clear()
                    self._client = None
                pause = mqtt_link.next_backoff(pause)
                await asyncio.sleep(pause)
        finally:
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    async def _worker(self, queue: asyncio.Queue[aiomqtt.Message]) -> None:
        while True:
            message = await queue.get()
            try:
                await self.take(str(message.topic), bytes(message.payload))
            except Exception:  # one bad message (or a database hiccup) must not stop ingest
                self.counters["dropped_failed"] += 1
                log.exception("hub.message_failed", topic=str(message.topic))

    def _drop(self, reason: str, topic: str, detail: str) -> None:
        self.counters[f"dropped_{reason}"] += 1
        log.warning("hub.message_dropped", reason=reason, source=topic, detail=detail)

    async def take(self, topic: str, payload: bytes) -> None:
        """Validate one uplink message and store what it says (or drop it with a reason)."""
        parsed = self.topics.parse(topic)
        if parsed is None or parsed[1] == "commands":
            self._drop("unknown_topic", topic, "not an uplink topic")
            return
        gw, kind, site_id = parsed
        try:
            message = decode(kind, payload)
        except ContractError as exc:
            self._drop("malformed", topic, str(exc))
            return
        if site_id is not None and getattr(message, "site_id", site_id) != site_id:
            self._drop("malformed", topic, "site_id differs from the topic's")
            return
        stored = True
        if isinstance(message, Presence):
            if message.gateway_id != gw:
                self._drop("foreign_namespace", topic, f"presence names {message.gateway_id}")
                return
            taken = await self._store.presence(gw, online=message.online, sites=message.sites,
                                               at=message.at)
            for site, owner in taken:
                self.counters["site_conflicts"] += 1
                log.error("hub.site_claimed_twice", site_id=site, gateways=[owner, gw],
                          detail=f"site {site} is claimed by gateways {owner} and {gw}; the hub "
                                 "ignores it until an operator resolves it (docs/hub.md)")
        elif isinstance(message, SiteInfoMessage):
            stored = await self._store.save_info(message.site_id, gw, message.products,
                                                 message.site_info, message.at)
        elif isinstance(message, LiveMessage):
            stored = await self._store.save_live(message.site_id, gw, message.live_status,
                                                 message.offline, message.at)
        elif isinstance(message, HistoryMessage):
            stored = await self._store.add_history(message.site_id, gw, message.buckets)
        elif isinstance(message, OutagesMessage):
            stored = await self._store.save_outages(message.site_id, gw, message.outages)
        elif isinstance(message, ChargesMessage):
            stored = await self._store.save_charges(message.site_id, gw, message.sessions)
        elif isinstance(message, OutcomeMessage):
            recorded = await self._store.outcome(message.command_id, gw, message.status,
                                                 message.body)
            if recorded is None:
                self._drop("unsolicited", topic, f"no command {message.command_id} for {gw}")
                return
            # recorded by this replica or already by another: the journal holds it either way
            self._waiters.resolve(message.command_id, message.status, message.body)
            if not recorded:
                self.counters["outcomes_recorded_before"] += 1
        if not stored:
            self._drop("unknown_site", topic, f"site {site_id} is not registered to {gw}")
            return
        self.counters[f"stored_{kind}"] += 1
