"""Find Modbus TCP devices on a host: SunSpec discovery, then each profile's identification registers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from drivers.base import Capability, DeviceInfo
from drivers.errors import ConfigurationError, DeviceRejected, DeviceUnreachable, DriverError
from drivers.profile.catalog import PROFILES
from drivers.profile.driver import ProfileDriver
from drivers.profile.options import ProfileOptions
from drivers.sunspec.driver import SunSpecDriver
from drivers.sunspec.options import SunSpecOptions
from drivers.transport import ModbusEndpoint, ModbusPool, MqttPool, Transports

__all__ = ["Found", "PortNote", "ScanResult", "probe_port", "render", "scan"]

#: How long an accepted connection must stay open to count as a free port (a one-client device
#: that is busy accepts and resets at once).
_RESET_WINDOW_S = 0.2
#: Waits before trying a busy one-client port again.
_BUSY_BACKOFF_S = (0.5, 1.0, 2.0)


@dataclass(frozen=True, slots=True)
class Found:
    """A device that answered: where, what, and the config that drives it."""

    port: int
    unit_id: int
    type: str
    options: dict[str, Any]
    info: DeviceInfo
    capabilities: frozenset[Capability]
    single_client: bool = False


@dataclass(frozen=True, slots=True)
class PortNote:
    """Something to tell the user about a port (closed, busy one-client device, nothing found)."""

    port: int
    note: str


@dataclass(slots=True)
class ScanResult:
    """What a scan found, and what it has to say about the ports it could not read."""

    host: str
    found: list[Found] = field(default_factory=list)
    notes: list[PortNote] = field(default_factory=list)
    timed_out: bool = False


async def probe_port(host: str, port: int) -> str | None:
    """Whether ``port`` takes a connection: None when it does and keeps it open, else why not
    ("refused", or "reset": a device serving one client at a time that is busy with another)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    except (OSError, TimeoutError):
        return "refused"
    try:
        data = await asyncio.wait_for(reader.read(1), _RESET_WINDOW_S)
    except TimeoutError:
        return None  # still open, silent: a Modbus server waiting for a request
    except OSError:
        return "reset"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return "reset" if not data else None


async def _free(host: str, port: int, backoff_s: Sequence[float], say: Callable[[str], None]) -> str | None:
    for wait in (*backoff_s, None):
        state = await probe_port(host, port)
        if state != "reset" or wait is None:
            return state
        say(f"{host}:{port} accepts and resets connections: a device that serves one Modbus "
            f"client at a time is busy with another (a gateway, a logger?); trying again in "
            f"{wait:g} s")  # fmt: skip
        await asyncio.sleep(wait)
    return "reset"


async def _identify(driver: SunSpecDriver | ProfileDriver) -> DeviceInfo | None:
    """What the device says it is, or None when it is not this family; the driver closed."""
    try:
        return await driver.connect()
    except (ConfigurationError, DeviceRejected):
        return None
    finally:
        await driver.close()


async def _sunspec(host: str, port: int, unit: int, transports: Transports, timeout_s: float) -> Found | None:
    options = SunSpecOptions(host=host, port=port, unit_id=unit, timeout_s=timeout_s)
    driver = SunSpecDriver("scan", options, transports)
    if (info := await _identify(driver)) is None:
        return None
    return Found(port, unit, "sunspec", {"host": host, "port": port, "unit_id": unit}, info,
                 driver.capabilities)  # fmt: skip


async def _profile(  # noqa: PLR0917 - a partial() of the probe list
    family: str, host: str, port: int, unit: int, transports: Transports, timeout_s: float
) -> Found | None:
    options = ProfileOptions(profile=family, host=host, port=port, unit_id=unit, timeout_s=timeout_s)
    driver = ProfileDriver("scan", options, transports)
    if (info := await _identify(driver)) is None:
        return None
    return Found(
        port, unit, "profile", {"profile": family, "host": host, "port": port, "unit_id": unit},
        info, driver.capabilities, single_client=PROFILES[family].single_client,
    )  # fmt: skip


async def _brand_of(  # noqa: PLR0917 - the probe's context
    found: Found, host: str, unit: int, transports: Transports, timeout_s: float,
    holder: ModbusEndpoint, settle_s: float,
) -> Found:
    """A SunSpec device that a bundled profile also identifies is reported as that profile
    (SolarEdge: SunSpec readings, storage control in its own registers the SunSpec driver
    cannot reach); otherwise as SunSpec."""
    for family in sorted(PROFILES):
        try:
            await _settled(holder, settle_s, timeout_s)
            brand = await _profile(family, host, found.port, unit, transports, timeout_s)
        except DeviceUnreachable:
            continue
        if brand is not None:
            return brand
    return found


async def _settled(endpoint: ModbusEndpoint, settle_s: float, timeout_s: float) -> None:
    """Wait out a device's deafness after a connect (Huawei) before any probe's first request."""
    if settle_s > 0:
        wait_s = settle_s * 1.1 + 0.02  # the device's clock starts a moment after ours
        age = await endpoint.connection_age(timeout_s)
        if age < wait_s:
            await asyncio.sleep(wait_s - age)


async def _scan_port(  # noqa: PLR0917 - one port of one scan
    result: ScanResult, port: int, units: Sequence[int], transports: Transports, timeout_s: float,
    settle_s: float, backoff_s: Sequence[float], say: Callable[[str], None],
) -> None:
    host = result.host
    state = await _free(host, port, backoff_s, say)
    if state == "refused":
        result.notes.append(PortNote(port, "connection refused"))
        return
    if state == "reset":
        result.notes.append(PortNote(port, "a one-client device busy with another client: stop "
                                           "that client (or scan later) and try again"))
        return
    # Keep one connection for the whole port: a device that ignores requests after a connect
    # (Huawei) settles once, and a one-client device never sees a second client.
    holder = transports.modbus.acquire(host, port)
    try:
        for unit in units:
            probes: list[Callable[[], Awaitable[Found | None]]] = [
                functools.partial(_sunspec, host, port, unit, transports, timeout_s),
                *[functools.partial(_profile, f, host, port, unit, transports, timeout_s)
                  for f in sorted(PROFILES)],
            ]  # fmt: skip
            for probe in probes:
                try:
                    await _settled(holder, settle_s, timeout_s)
                    found = await probe()
                except DeviceUnreachable as exc:
                    result.notes.append(PortNote(port, f"unit {unit}: no answer ({exc})"))
                    break  # this unit is silent: next unit
                if found is not None:
                    if found.type == "sunspec":
                        found = await _brand_of(found, host, unit, transports, timeout_s, holder,
                                                settle_s)
                    result.found.append(found)
                    break
    finally:
        await transports.modbus.release(holder)
    if not any(f.port == port for f in result.found) and not any(n.port == port for n in result.notes):
        result.notes.append(PortNote(port, "answers Modbus, but neither SunSpec nor a known profile"))


async def scan(
    host: str,
    ports: Sequence[int] = (502,),
    units: Sequence[int] = (1,),
    *,
    timeout_s: float = 1.0,
    total_s: float = 60.0,
    settle_s: float | None = None,
    busy_backoff_s: Sequence[float] = _BUSY_BACKOFF_S,
    say: Callable[[str], None] = lambda _: None,
) -> ScanResult:
    """Try every (port, unit) of ``host``: SunSpec discovery, then each bundled profile's
    identification registers, one connection per port, one request at a time.

    ``timeout_s`` bounds each request, ``total_s`` the whole scan (what was found by then is
    kept, ``timed_out`` set). ``settle_s``: the wait after a connect before the first request
    (None = the longest ``connect_settle_s`` of the bundled profiles). A port that accepts and
    resets at once (a busy one-client device) is tried again after each of ``busy_backoff_s``
    seconds, then reported. ``say`` gets progress
    lines (e.g. a busy one-client device).
    """
    longest = max((p.connect_settle_s for p in PROFILES.values()), default=0.0)
    settle = longest if settle_s is None else settle_s
    result = ScanResult(host)
    transports = Transports(modbus=ModbusPool(timeout_s=timeout_s, backoff_max_s=timeout_s),
                            mqtt=MqttPool())  # fmt: skip
    try:
        async with asyncio.timeout(total_s):
            for port in ports:
                await _scan_port(
                    result, port, units, transports, timeout_s, settle, busy_backoff_s, say
                )
    except TimeoutError:
        result.timed_out = True
    except DriverError as exc:  # a device that breaks the rules mid-scan: report, keep the rest
        result.notes.append(PortNote(-1, f"scan stopped: {exc}"))
    finally:
        await transports.close()
    return result


def _name(found: Found, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", f"{found.info.manufacturer} {found.info.model}".lower()).strip("-")
    name, n = base or "device", 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def render(result: ScanResult, *, total_s: float) -> str:
    """A ready ``devices:`` config snippet for what was found, with comments on the rest (pure)."""
    lines = [f"# energy-gateway scan {result.host}: {len(result.found)} device(s) found"]
    if result.timed_out:
        lines.append(f"# the scan stopped after its total timeout ({total_s:g} s): ports or units "
                     f"after that were not tried")  # fmt: skip
    for note in result.notes:
        where = f"port {note.port}" if note.port >= 0 else "scan"
        lines.append(f"# {where}: {note.note}")
    if not result.found:
        return "\n".join(lines) + "\n"
    taken: set[str] = set()
    devices = []
    for found in result.found:
        info = found.info
        kind = f"profile {found.options['profile']}" if found.type == "profile" else found.type
        lines.append(f"# {result.host}:{found.port} unit {found.unit_id}: {info.manufacturer} "
                     f"{info.model}, serial {info.serial_number or '?'} ({kind})")  # fmt: skip
        lines.append(f"#   capabilities: {', '.join(sorted(found.capabilities)) or 'none'}")
        if found.single_client:
            lines.append("#   serves one Modbus TCP client at a time: let the gateway be that client "
                         "(others can share it through the device's proxy_port)")  # fmt: skip
        devices.append({"name": _name(found, taken), "type": found.type, "options": found.options})
    snippet = yaml.safe_dump({"devices": devices}, sort_keys=False, default_flow_style=False)
    return "\n".join(lines) + "\n" + snippet
