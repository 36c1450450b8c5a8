"""A Home Assistant stand-in for tests: paho-mqtt (HA's own client library) on its own thread."""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    """One message as the client saw it."""

    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        """The payload as JSON."""
        return orjson.loads(self.payload)


class HaClient:
    """Subscribes like Home Assistant (discovery prefix and the gateway's topics), keeps every
    message, publishes commands and birth messages. paho's network loop runs on its own thread,
    so nothing here blocks the event loop; connect and close run in a worker thread.
    """

    def __init__(self, host: str, port: int, *, username: str | None = None,
                 password: str | None = None, ca_file: str | None = None,
                 filters: tuple[str, ...] = ("homeassistant/#", "energy-gateway/#")) -> None:
        self.host, self.port, self.filters = host, port, filters
        self.client = Client(CallbackAPIVersion.VERSION2, client_id="test-home-assistant")
        # Home Assistant's own last will (and, below, its birth message) on its status topic
        self.client.will_set("homeassistant/status", "offline", qos=1, retain=False)
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set_context(ssl.create_default_context(cafile=ca_file))
        self._lock = threading.Lock()
        self.messages: list[Received] = []
        self._subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()

    def _on_message(self, _client: Client, _userdata: object, msg: MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    async def __aenter__(self) -> HaClient:
        def connect() -> None:
            self.client.connect(self.host, self.port, keepalive=30)
            self.client.loop_start()
            self.client.subscribe([(f, 1) for f in self.filters])
            if not self._subscribed.wait(5):
                raise TimeoutError("no SUBACK")

        await asyncio.to_thread(connect)
        return self

    async def __aexit__(self, *exc: object) -> None:
        def close() -> None:
            self.client.disconnect()
            self.client.loop_stop()

        await asyncio.to_thread(close)

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Publish (QoS 1); paho queues it for its network thread."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def on(self, topic: str) -> list[Received]:
        """Every message received on ``topic``, oldest first."""
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Received | None:
        """The newest message on ``topic``."""
        found = self.on(topic)
        return found[-1] if found else None

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._lock:
            self.messages.clear()
