"""Follows an MQTT topic carrying a storm flag or JSON alert and hands each message to a StormWatch."""

from __future__ import annotations

import asyncio
from typing import Final

import structlog

from drivers.transport.mqtt import MqttPool
from gateway.core.config.storm import MqttSource
from gateway.core.storm import MAX_ALERTS_PER_SOURCE, FeedError, StormAlert, parse_mqtt_payload
from gateway.runtime.clock import Clock, utc_now
from gateway.runtime.storm.watch import SourceState, StormWatch

log = structlog.get_logger("gateway.runtime.storm.mqtt")

SOURCE: Final = "mqtt"
_CHECK_S: Final = 1.0  # how often the connection state is looked at when no message comes


async def run_mqtt_source(
    watch: StormWatch, config: MqttSource, pool: MqttPool, *, clock: Clock = utc_now,
) -> None:
    """Subscribe to ``config.topic`` on the shared connection to its broker, until cancelled.

    Each topic matching the filter holds at most one alert (its latest message); a message that
    cannot be used is logged naming the topic and changes nothing. A lost broker is reported to
    the watch (shown in /health) and never clears an alert.
    """
    broker = pool.acquire(config.host, config.port, config.login())
    latest: dict[str, bytes] = {}
    woken = asyncio.Event()

    def on_message(topic: str, payload: bytes, _retained: bool) -> None:
        if topic not in latest and len(latest) >= MAX_ALERTS_PER_SOURCE:
            return  # a wildcard filter over many topics: bounded
        latest[topic] = payload
        woken.set()

    state = watch.sources.setdefault(SOURCE, SourceState())
    # what the topics held before a restart, until their next message says otherwise
    held: dict[str, StormAlert] = {a.id: a for a in state.alerts}
    subs = []
    try:
        subs.append(await broker.subscribe(config.topic, on_message, qos=config.qos))
        while True:
            try:
                async with asyncio.timeout(_CHECK_S):
                    await woken.wait()
            except TimeoutError:
                pass
            woken.clear()
            if not broker.connected:
                watch.failed(SOURCE, f"broker {config.host}:{config.port} not connected")
                continue
            pending, changed = dict(latest), False
            latest.clear()
            for topic, payload in pending.items():
                try:
                    alert = parse_mqtt_payload(payload, now=clock(), topic=topic)
                except FeedError as exc:
                    log.warning("storm.mqtt_message_refused", site_id=watch.site_id, topic=topic,
                                error=str(exc))
                    continue
                changed = True
                if alert is None:
                    held.pop(topic, None)
                else:
                    held[topic] = alert
            if changed or state.status != "ok":
                await watch.update(SOURCE, tuple(held.values()))
    finally:
        await pool.release(broker, subs)
