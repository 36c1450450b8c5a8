"""What both transports share: the one reconnect policy and ref-counted connection owners (no sockets)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from drivers.errors import DeviceUnreachable
from drivers.transport.backoff import reconnect
from drivers.transport.shared import SharedConnections


class Refused(Exception):
    """Stands for a transport's connect failure (DeviceUnreachable, aiomqtt.MqttError)."""


async def test_reconnect_retries_its_failure_until_connected() -> None:
    attempts: list[int] = []

    async def connect() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 4:
            raise Refused
        return "up"

    got = await reconnect(connect, retry_on=Refused, backoff_max_s=0.01, closed=lambda: False, what="x")
    assert (got, len(attempts)) == ("up", 4)


async def test_reconnect_stops_when_closed_with_the_last_failure_chained() -> None:
    closed = False

    async def connect() -> str:
        nonlocal closed
        closed = True  # the owner closes while this attempt fails
        raise Refused("refused")

    with pytest.raises(DeviceUnreachable, match="x: closed") as caught:
        await reconnect(connect, retry_on=Refused, backoff_max_s=0.01, closed=lambda: closed, what="x")
    assert isinstance(caught.value.__cause__, Refused)


async def test_reconnect_passes_any_other_failure_through_at_once() -> None:
    attempts = 0

    async def connect() -> str:
        nonlocal attempts
        attempts += 1
        raise ValueError("a bug, not a dropped link")

    with pytest.raises(ValueError, match="a bug"):
        await reconnect(connect, retry_on=Refused, backoff_max_s=0.01, closed=lambda: False, what="x")
    assert attempts == 1


@dataclass(eq=False)
class Owner:
    host: str
    port: int
    closed: bool = False

    async def aclose(self) -> None:
        self.closed = True


async def test_shared_connections_are_ref_counted_per_endpoint() -> None:
    shared: SharedConnections[Owner] = SharedConnections(Owner)
    a, b, other = shared.acquire("h", 1), shared.acquire("h", 1), shared.acquire("h", 2)
    assert a is b
    assert a is not other
    await shared.release(a)
    states = [a.closed]  # one share left
    await shared.release(b)
    states.append(a.closed)
    assert states == [False, True]
    assert not other.closed
    await shared.release(b)  # a stale owner is ignored
    assert shared.acquire("h", 1) is not a  # a fresh owner after the last release
    await shared.close()
    assert other.closed
