"""An MQTT v5 client for a configured broker link (TLS, credentials, last will) and its backoff."""

from __future__ import annotations

import random
import socket
import ssl

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.core.config.models import MqttLink

#: A broker keeps a disconnected client's session (its subscriptions, queued QoS 1 messages)
#: this long, so commands sent during a short cut are delivered after it.
SESSION_EXPIRY_S = 3600
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 10.0


def _tls(link: MqttLink) -> ssl.SSLContext | None:
    if not link.tls:
        return None
    context = ssl.create_default_context(cafile=str(link.ca_file) if link.ca_file else None)
    if link.cert_file is not None:
        context.load_cert_chain(str(link.cert_file),
                                str(link.key_file) if link.key_file else None)
    return context


def client(link: MqttLink, identifier: str, *, will: aiomqtt.Will | None = None,
           persistent: bool = False) -> aiomqtt.Client:
    """A client for ``link`` (not connected yet: ``async with`` it).

    ``persistent``: keep the session across disconnects (``SESSION_EXPIRY_S``).
    """
    properties = None
    if persistent:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
    return aiomqtt.Client(
        link.host, link.port, username=link.username, password=link.password,
        identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5, will=will,
        keepalive=link.keepalive_s, timeout=10.0, properties=properties,
        clean_start=not persistent,
        tls_context=_tls(link),
        # Commands and outcomes are small packets: with Nagle's algorithm each one waits for
        # the peer's delayed ACK (~40 ms on Linux) instead of leaving at once (docs/hub.md).
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


def next_backoff(previous_s: float) -> float:
    """The pause after a failed connection: doubling to a cap, jittered so many clients spread."""
    base = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, previous_s * 2))
    return base * (0.8 + 0.4 * random.random())  # noqa: S311 - jitter, not security
