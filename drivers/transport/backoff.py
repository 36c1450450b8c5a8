"""The one reconnect policy of the transports: capped, jittered exponential backoff until closed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from drivers.errors import DeviceUnreachable

__all__ = ["reconnect"]

T = TypeVar("T")

_FIRST_PAUSE_S = 0.05  # doubles per failed attempt up to the cap


async def reconnect(
    connect: Callable[[], Awaitable[T]],
    *,
    retry_on: type[Exception],
    backoff_max_s: float,
    closed: Callable[[], bool],
    what: str,
) -> T:
    """Call ``connect`` until it returns, pausing after each ``retry_on`` failure.

    This is the transports' only retry layer (pymodbus runs with ``retries=0`` and no reconnect
    of its own; aiomqtt never reconnects by itself). Pauses grow from 50 ms, doubling up to
    ``backoff_max_s``, with up to a tenth of the cap of jitter so that many devices dropped at
    once do not reconnect in lockstep. Any other exception ends the attempts at once.

    Raises:
        DeviceUnreachable: ``closed()`` turned true; the last failure is chained.
    """
    retrying = AsyncRetrying(
        wait=wait_exponential_jitter(
            multiplier=_FIRST_PAUSE_S, max=backoff_max_s, jitter=backoff_max_s / 10
        ),
        retry=retry_if_exception_type(retry_on),
        stop=lambda _: closed(),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await connect()
    except retry_on as exc:
        raise DeviceUnreachable(f"{what}: closed") from exc
    raise AssertionError("tenacity ends with a result or an exception")  # pragma: no cover
