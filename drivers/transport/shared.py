"""One connection per (host, port) for the whole process, shared by ref count: the last release closes it."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

__all__ = ["SharedConnections"]


class _Connection(Protocol):
    host: str
    port: int

    async def aclose(self) -> None: ...


C = TypeVar("C", bound=_Connection)


class SharedConnections(Generic[C]):
    """A transport's connection owners keyed by (host, port), made on first acquire (the pools' base).

    Each device driver acquires its endpoint's owner and releases it on close; every driver
    behind one endpoint (Modbus unit ids behind a gateway, devices on one broker) shares it.
    ``extra`` parts of the key keep connections apart that differ in more than the address
    (an MQTT broker's login: each login is its own client).
    """

    def __init__(self, make: Callable[..., C]) -> None:
        self._make = make
        self._owners: dict[tuple[Hashable, ...], C] = {}
        self._shares: dict[tuple[Hashable, ...], int] = {}
        self._keys: dict[int, tuple[Hashable, ...]] = {}  # id(owner) -> its key

    def acquire(self, host: str, port: int, *extra: Hashable) -> C:
        """The shared owner of (host, port, *extra); every acquire needs one ``release``."""
        key = (host, port, *extra)
        owner = self._owners.get(key)
        if owner is None:
            owner = self._owners[key] = self._make(host, port, *extra)
            self._keys[id(owner)] = key
        self._shares[key] = self._shares.get(key, 0) + 1
        return owner

    async def release(self, owner: C) -> None:
        """Give back one share of ``owner``; the last release closes it (a stale owner is ignored)."""
        key = self._keys.get(id(owner))
        if key is None or self._owners.get(key) is not owner:
            return
        self._shares[key] -= 1
        if self._shares[key] <= 0:
            del self._owners[key], self._shares[key], self._keys[id(owner)]
            await owner.aclose()

    async def close(self) -> None:
        """Close every owner (process shutdown)."""
        owners = list(self._owners.values())
        self._owners.clear()
        self._shares.clear()
        self._keys.clear()
        for owner in owners:
            await owner.aclose()
