"""Shared MQTT connections: one client per broker, a reconnect loop that re-subscribes, topic routing."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import aiomqtt
import structlog
from paho.mqtt.client import topic_matches_sub

from drivers.background import spawn, stop
from drivers.errors import DeviceUnreachable, NotConfirmed
from drivers.mqtt_login import BrokerLogin
from drivers.topics import valid_filter, valid_topic
from drivers.transport.backoff import reconnect
from drivers.transport.shared import SharedConnections

__all__ = [
    "EchoedWrite",
    "Handler",
    "LatestValues",
    "MqttBroker",
    "MqttPool",
    "Sample",
    "Subscription",
    "tls_context",
    "write_confirmed",
]

_log = structlog.get_logger("drivers.transport.mqtt")

_RECONNECT_PAUSE_S = 0.25  # before the first attempt after a lost connection

Handler = Callable[[str, bytes, bool], None]
"""Called with (topic, payload, retained) for every message matching a subscription's filter."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
W = TypeVar("W")


# --------------------------------------------------------------------------- latest values


@dataclass(frozen=True, slots=True)
class Sample(Generic[V]):
    """A value as received: ``at`` in monotonic seconds, ``seq`` the cache's arrival counter."""

    value: V
    at: float
    seq: int


class LatestValues(Generic[K, V]):
    """The latest value per key, with arrival order and waiters for "a newer value arrived".

    Time is passed in (``now``, monotonic seconds), so the store itself never reads a clock.
    """

    def __init__(self) -> None:
        self._samples: dict[K, Sample[V]] = {}
        self._seq = 0
        self._last_at: float | None = None
        self._waiters: set[asyncio.Event] = set()

    @property
    def seq(self) -> int:
        """Arrival counter of the newest value (0 before the first)."""
        return self._seq

    @property
    def last_at(self) -> float | None:
        """Monotonic time of the newest value of any key, None before the first."""
        return self._last_at

    def put(self, key: K, value: V, now: float) -> None:
        """Store ``value`` for ``key`` received at ``now`` and wake every waiter."""
        self._seq += 1
        self._samples[key] = Sample(value, now, self._seq)
        self._last_at = now
        for event in self._waiters:
            event.set()

    def touch(self, now: float) -> None:
        """Note that something arrived at ``now`` without a value (e.g. a status); wakes waiters."""
        self._last_at = now
        for event in self._waiters:
            event.set()

    def get(self, key: K) -> Sample[V] | None:
        """The latest sample of ``key``, None if none arrived."""
        return self._samples.get(key)

    def value(self, key: K, default: V | None = None) -> V | None:
        """The latest value of ``key``, ``default`` if none arrived."""
        sample = self._samples.get(key)
        return default if sample is None else sample.value

    def snapshot(self) -> dict[K, V]:
        """Every key's latest value."""
        return {k: s.value for k, s in self._samples.items()}

    async def wait_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``done()`` holds, re-checking after every ``put``; False after ``timeout_s``."""
        if done():
            return True
        event = asyncio.Event()
        self._waiters.add(event)
        try:
            async with asyncio.timeout(timeout_s):
                while not done():
                    await event.wait()
                    event.clear()
        except TimeoutError:
            return done()
        else:
            return True
        finally:
            self._waiters.discard(event)


# --------------------------------------------------------------------------- connections


@dataclass(eq=False)
class Subscription:
    """One registered filter and its handler; give it back with ``MqttBroker.unsubscribe``."""

    topic_filter: str
    handler: Handler
    qos: int = 1
    active: bool = field(default=True, init=False)


def _deliver_cancellation() -> None:
    # aiomqtt awaits acknowledgements with asyncio.wait_for, which on Python 3.11 can drop a
    # cancellation that races the answer; re-raise it here so the caller really stops.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class MqttBroker:
    """One broker (host, port): a single aiomqtt client shared by every device on it.

    A background task connects, re-issues every registered filter after each (re)connect and
    routes each incoming message to the subscriptions whose filter matches its topic (paho's
    ``topic_matches_sub``: MQTT 3.1.1 §4.7, wildcards never match a leading ``$``) — messages
    matching none are dropped (amqtt pushes retained messages of other clients' filters). Lost
    connections are re-made by ``drivers.transport.backoff.reconnect``, the one retry layer
    (aiomqtt never reconnects by itself). Handlers run on the loop and must not block.
    """

    def __init__(
        self, host: str, port: int, *, timeout_s: float, backoff_max_s: float, client_prefix: str,
        login: BrokerLogin | None = None, will: aiomqtt.Will | None = None,
        client_id: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.login = login or BrokerLogin()
        self.will = will
        self._fixed_id = client_id
        #: Why the last connection attempt failed (refused login, TLS, unreachable), None once up.
        self.last_error: str | None = None
        self._refusal: str | None = None  # the broker said no (login, certificate): no use waiting
        self._attempted = asyncio.Event()  # set after each connection attempt, whatever its end
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s
        self.client_prefix = client_prefix
        #: MQTT client id of the current (or last) connection.
        self.client_id = ""
        #: Successful connections so far (each reconnect adds one).
        self.connections = 0
        self._subs: list[Subscription] = []
        self._filters: dict[str, int] = {}  # filter -> qos sent to the broker
        self._sub_lock = asyncio.Lock()
        self._client: aiomqtt.Client | None = None
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        self._log = _log.bind(broker=f"{host}:{port}")

    def __repr__(self) -> str:
        return f"MqttBroker({self.host}:{self.port}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        """True while the connection is up and every filter has been (re-)subscribed."""
        return self._up.is_set()

    def start(self) -> None:
        """Start the connection task (idempotent; ``acquire`` calls it)."""
        if self._closed:
            return
        if self._task is None or self._task.done():
            self._task = spawn(self._run(), name=f"mqtt {self.host}:{self.port}")

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait for the connection (``timeout_s`` default: the pool's timeout).

        Raises:
            DeviceUnreachable: closed, or not connected within the timeout.
        """
        if self._closed:
            raise DeviceUnreachable(f"mqtt {self.host}:{self.port}: connection closed")
        if self._up.is_set():
            return
        self.start()
        wait = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(wait):
                while not self._up.is_set():
                    if self._refusal is not None:
                        # A refused login or certificate will not change by waiting longer; the
                        # reconnect loop keeps trying in the background all the same.
                        raise DeviceUnreachable(f"mqtt {self.host}:{self.port}: {self._refusal}")
                    self._attempted.clear()
                    await self._attempted.wait()
        except TimeoutError as exc:
            why = "" if self.last_error is None else f" ({self.last_error})"
            raise DeviceUnreachable(
                f"mqtt {self.host}:{self.port}: not connected within {wait} s{why}") from exc

    def on_connect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after every (re)connect, once filters are re-subscribed; returns a remover."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    async def subscribe(self, topic_filter: str, handler: Handler, *, qos: int = 1) -> Subscription:
        """Route messages matching ``topic_filter`` to ``handler`` from now on, across reconnects.

        The filter is sent to the broker at once when connected, else on the next connect.
        Retained messages may reach ``handler`` before this returns.

        Raises:
            ValueError: ``topic_filter`` is not a valid filter or ``qos`` not 0..2.
        """
        if not valid_filter(topic_filter) or qos not in {0, 1, 2}:
            raise ValueError(f"invalid subscription {topic_filter!r} qos {qos}")
        sub = Subscription(topic_filter, handler, qos)
        async with self._sub_lock:
            self._subs.append(sub)  # before SUBSCRIBE: retained messages follow the SUBACK at once
            sent = self._filters.get(topic_filter)
            if sent is None or sent < qos:
                self._filters[topic_filter] = qos
                client = self._client
                if client is not None and self._up.is_set():
                    try:
                        await client.subscribe(topic_filter, qos=qos, timeout=self.timeout_s)
                    except aiomqtt.MqttError as exc:
                        # The session is ending; the next connect subscribes every filter anyway.
                        self._log.warning("mqtt.subscribe_failed", filter=topic_filter, error=str(exc))
        _deliver_cancellation()
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop routing to ``sub``; the broker is told when no other subscription uses its filter."""
        sub.active = False
        async with self._sub_lock:
            with contextlib.suppress(ValueError):
                self._subs.remove(sub)
            if any(s.topic_filter == sub.topic_filter for s in self._subs):
                return
            self._filters.pop(sub.topic_filter, None)
            client = self._client
            if client is not None and self._up.is_set():
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.unsubscribe(sub.topic_filter, timeout=self.timeout_s)
        _deliver_cancellation()

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        """Publish once (QoS 1/2: until the broker acknowledges).

        Waits up to ``timeout_s`` (default: the pool's timeout) for a connection first; nothing is
        queued across a disconnect — the caller decides whether to send again.

        Raises:
            DeviceUnreachable: not connected, or no acknowledgement within the timeout.
            ValueError: ``topic`` contains wildcards or ``qos`` is not 0..2.
        """
        if not valid_topic(topic) or qos not in {0, 1, 2}:
            raise ValueError(f"invalid publish to {topic!r} qos {qos}")
        wait = self.timeout_s if timeout_s is None else timeout_s
        await self.wait_connected(wait)
        client = self._client
        if client is None:
            raise DeviceUnreachable(f"mqtt {self.host}:{self.port}: connection lost")
        try:
            async with asyncio.timeout(wait):
                await client.publish(topic, payload, qos=qos, retain=retain, timeout=wait)
        except (TimeoutError, aiomqtt.MqttError) as exc:
            raise DeviceUnreachable(
                f"mqtt {self.host}:{self.port}: publish to {topic} failed: {exc}"
            ) from exc
        _deliver_cancellation()

    async def aclose(self) -> None:
        """Disconnect and stop reconnecting; later calls raise DeviceUnreachable."""
        self._closed = True
        self._up.clear()
        task, self._task = self._task, None
        await stop(task)
        self._subs.clear()
        self._filters.clear()

    # ----------------------------------------------------------------------- connection task

    async def _run(self) -> None:
        while not self._closed:
            try:
                client = await self._connect()
            except DeviceUnreachable:
                return  # closed while connecting
            except Exception:
                # Waiters time out with DeviceUnreachable; the next wait_connected starts anew.
                self._log.exception("mqtt.connect_failed")
                return
            try:
                await self._session(client)
            except aiomqtt.MqttError as exc:
                self._log.warning("mqtt.connection_lost", error=str(exc))
            except Exception:
                self._log.exception("mqtt.session_failed")
            finally:
                self._up.clear()
                self._client = None
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.__aexit__(None, None, None)
            # A broker going down may still accept connections while it shuts down (amqtt does):
            # reconnecting at once could land on the dying instance, which never routes again.
            await asyncio.sleep(min(_RECONNECT_PAUSE_S, self.backoff_max_s))

    async def _connect(self) -> aiomqtt.Client:
        return await reconnect(
            self._connect_once, retry_on=aiomqtt.MqttError, backoff_max_s=self.backoff_max_s,
            closed=lambda: self._closed, what=f"mqtt {self.host}:{self.port}",
        )  # fmt: skip

    async def _connect_once(self) -> aiomqtt.Client:
        # Built inside the running loop (aiomqtt needs it); clean session each time, under a
        # fresh id: a broker still holding the dropped session under the old id would take the
        # new one over or reap its subscriptions (amqtt does).
        self.client_id = self._fixed_id or f"{self.client_prefix}-{secrets.token_hex(4)}"
        login = self.login
        try:
            # Reading certificate files is disk I/O: off the loop, and again per connection so
            # a renewed certificate is picked up without a restart.
            context = None if login.tls is None else await asyncio.to_thread(tls_context, login)
        except (OSError, ValueError) as exc:
            self._note_failure(f"TLS setup failed: {exc}", refused=True)
            raise aiomqtt.MqttError(str(exc)) from exc
        client = aiomqtt.Client(
            self.host, self.port, identifier=self.client_id, timeout=self.timeout_s,
            keepalive=max(5, int(self.timeout_s * 10)), username=login.username,
            password=login.password, tls_context=context,
            tls_insecure=None if login.tls is None else not login.tls.verify, will=self.will,
            # Commands and their echoes are small packets: without TCP_NODELAY, Nagle's algorithm
            # and the peer's delayed ACK hold them back (tens of ms per round trip).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )  # fmt: skip
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            why, refused = _connect_failure(exc, login)
            self._note_failure(why, refused=refused)
            raise
        self.last_error = self._refusal = None
        return client

    def _note_failure(self, why: str, *, refused: bool) -> None:
        # Logged once per distinct reason: a wrong password retried with backoff is one line.
        if why != self.last_error:
            self._log.warning("mqtt.connect_refused" if refused else "mqtt.unreachable",
                              error=why, user=self.login.username, tls=self.login.tls is not None)
        self.last_error = why
        self._refusal = why if refused else None
        self._attempted.set()

    async def _session(self, client: aiomqtt.Client) -> None:
        async with self._sub_lock:
            for topic_filter, qos in list(self._filters.items()):
                await client.subscribe(topic_filter, qos=qos, timeout=self.timeout_s)
            self._client = client
            self.connections += 1
            self._up.set()
            self._attempted.set()
        self._log.info("mqtt.connected", filters=len(self._filters), connections=self.connections)
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                self._log.exception("mqtt.on_connect_failed")
        async for message in client.messages:
            self._dispatch(str(message.topic), _payload_bytes(message.payload), bool(message.retain))

    def _dispatch(self, topic: str, payload: bytes, retained: bool) -> None:
        for sub in list(self._subs):
            if sub.active and topic_matches_sub(sub.topic_filter, topic):
                try:
                    sub.handler(topic, payload, retained)
                except Exception:
                    self._log.exception("mqtt.handler_failed", topic=topic)


def tls_context(login: BrokerLogin) -> ssl.SSLContext:
    """The TLS context of ``login.tls``: verifying the broker unless ``verify`` is false.

    Reads the certificate files: call it off the event loop.

    Raises:
        OSError: a file cannot be read. ValueError (ssl.SSLError): a file is not PEM.
    """
    tls = login.tls
    if tls is None:
        raise ValueError("no tls section")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    context.sslsocket_class = _ClosingSSLSocket
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when its handshake fails: paho leaves such a socket open (a refused
    certificate, retried with backoff, would leak one socket per attempt until collected)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def _connect_failure(exc: aiomqtt.MqttError, login: BrokerLogin) -> tuple[str, bool]:
    """A connect failure in an installer's words, and whether the broker refused (a login or a
    certificate: trying again will not help) rather than could not be reached."""
    text = str(exc)
    code = getattr(exc, "rc", None)
    code = getattr(code, "value", code)  # paho's ReasonCode (MQTT 5 numbering) or a 3.1.1 int
    if isinstance(exc, aiomqtt.MqttCodeError) and code in (4, 5, 134, 135):
        who = "anonymous client" if login.anonymous else f"user {login.username!r}"
        return f"broker refused the login of {who}: {text}", True
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return f"broker certificate not trusted (check tls.ca_file): {text}", True
    return text, False


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


# --------------------------------------------------------------------------- confirmed commands


@dataclass(frozen=True, slots=True)
class EchoedWrite(Generic[K, W]):
    """One command and the echo that confirms it.

    ``payload`` goes to ``topic`` (never retained: a retained command would be replayed on every
    reconnect or device restart). It holds once a value of ``key`` that arrived after the
    command shows ``value``.
    """

    key: K
    value: W
    topic: str
    payload: bytes
    qos: int = 1


async def write_confirmed(
    broker: MqttBroker,
    echoes: LatestValues[K, V],
    writes: Sequence[EchoedWrite[K, W]],
    *,
    shows: Callable[[K, W, V], bool],
    timeout_s: float,
    device: str,
) -> None:
    """Publish ``writes`` in order, then wait until the device's own state echoes every value.

    MQTT devices confirm a command by publishing their new state, not by answering it. An echo
    counts when it arrived after the first command went out (an older value cannot confirm it)
    and ``shows(key, value, echoed)``. ``timeout_s`` bounds each publish and then the wait.

    Raises:
        NotConfirmed: an echo did not show its value within ``timeout_s`` (a device ignoring an
            invalid command re-publishes its old value, or nothing); carries expected/actual.
        DeviceUnreachable: a command could not be published.
    """
    mark = echoes.seq
    for write in writes:
        await broker.publish(write.topic, write.payload, qos=write.qos, retain=False, timeout_s=timeout_s)

    def echoed(write: EchoedWrite[K, W]) -> bool:
        sample = echoes.get(write.key)
        return sample is not None and sample.seq > mark and shows(write.key, write.value, sample.value)

    if not await echoes.wait_until(lambda: all(echoed(w) for w in writes), timeout_s):
        expected = {w.key: w.value for w in writes}
        actual = {w.key: echoes.value(w.key) for w in writes}
        raise NotConfirmed(
            f"{device}: device reports {actual}, expected {expected}", expected=expected, actual=actual
        )


class MqttPool(SharedConnections[MqttBroker]):
    """Ref-counted MQTT connections, one per broker (host, port) for the whole process.

    Args:
        timeout_s: connect / acknowledgement deadline in seconds (also the wait for a connection).
        backoff_max_s: cap of the reconnect backoff in seconds.
        client_prefix: MQTT client id prefix; a random suffix per connection keeps clients apart.
    """

    def __init__(
        self, *, timeout_s: float = 2.0, backoff_max_s: float = 10.0, client_prefix: str = "energy-gateway"
    ) -> None:
        super().__init__(self._broker)
        self.timeout_s = timeout_s
        self.backoff_max_s = backoff_max_s
        self.client_prefix = client_prefix

    def _broker(self, host: str, port: int, login: BrokerLogin | None = None) -> MqttBroker:
        return MqttBroker(
            host, port, timeout_s=self.timeout_s, backoff_max_s=self.backoff_max_s,
            client_prefix=self.client_prefix, login=login,
        )  # fmt: skip

    def acquire(self, host: str, port: int, login: BrokerLogin | None = None) -> MqttBroker:  # type: ignore[override]
        """The shared connection to (host, port) under ``login`` (each login is its own client),
        connecting in the background; needs one ``release``."""
        broker = super().acquire(host, port, login or BrokerLogin())
        broker.start()
        return broker

    async def release(self, broker: MqttBroker, subscriptions: Iterable[Subscription] = ()) -> None:
        """Drop a driver's ``subscriptions``, then give back its share; the last release disconnects."""
        for sub in subscriptions:
            with contextlib.suppress(DeviceUnreachable):
                await broker.unsubscribe(sub)
        await super().release(broker)
