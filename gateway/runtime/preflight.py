"""Start-up checks against this machine (addresses resolve and bind, data_dir is writable), one line each."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.config import Config
from gateway.runtime.storage.db import DB_NAME
from gateway.runtime.storage.legacy import HISTORY_FILE

Resolver = Callable[..., Sequence[tuple[Any, ...]]]


class StartupError(Exception):
    """Something on this machine stops the gateway or simulator from starting; one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Listen:
    """A socket a command will listen on and the config keys that chose it."""

    host_key: str
    host: str
    port_key: str
    port: int


def gateway_listens(config: Config) -> list[Listen]:
    """The gateway's HTTP port and its Modbus proxies."""
    gw = config.gateway
    out = [Listen("gateway.host", gw.host, "gateway.port", gw.port)]
    if gw.ocpp is not None and gw.ocpp.port:
        out.append(Listen("gateway.ocpp.host", gw.ocpp.host, "gateway.ocpp.port", gw.ocpp.port))
    for s, site in enumerate(config.sites):
        for d, dev in enumerate(site.devices):
            if dev.proxy_port:
                out.append(Listen("gateway.proxy_host", gw.proxy_host,
                                  f"sites[{s}].devices[{d}].proxy_port", dev.proxy_port))
    return out


def bind_problem(listen: Listen, resolve: Resolver = socket.getaddrinfo) -> str | None:
    """Why nothing could listen at ``listen`` right now (None when a bind succeeds).

    Binds and closes at once, with the options asyncio's servers use, so the answer matches
    what the real start-up would meet a moment later.
    """
    try:
        infos = resolve(listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return (f"{listen.host_key}: cannot resolve {listen.host!r} ({exc.strerror}); use an "
                "address of this machine such as 127.0.0.1")
    for family, kind, proto, _, sockaddr in {tuple(i) for i in infos}:
        try:
            with socket.socket(family, kind, proto) as sock:
                if os.name == "posix":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(sockaddr)
        except OSError as exc:
            return _bind_message(listen, exc)
    return None


def _bind_message(listen: Listen, exc: OSError) -> str:
    where = f"{listen.host}:{listen.port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"{listen.port_key}: {where} is already in use (another energy-gateway or "
                f"simulator?); stop it or choose another {listen.port_key}")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"{listen.host_key}: {listen.host} is not an address of this machine; use "
                "127.0.0.1 or one of its own addresses")
    if exc.errno == errno.EACCES:
        return (f"{listen.port_key}: port {listen.port} needs privileges this user lacks; "
                "choose a port from 1024 up")
    return f"{listen.port_key}: cannot listen on {where}: {exc.strerror or exc}"


def data_dir_problem(data_dir: Path) -> str | None:
    """Why the gateway could not keep its databases in ``data_dir`` (None when it can)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-test-"):
            pass
        for name in (DB_NAME, HISTORY_FILE):  # the storage, and an old file it takes in
            db = data_dir / name
            if db.exists() and not os.access(db, os.R_OK | os.W_OK):
                raise PermissionError(errno.EACCES, "Permission denied", str(db))
    except OSError as exc:
        what = exc.filename or data_dir
        return (f"gateway.data_dir: cannot write to {what} ({exc.strerror}); make it writable "
                "by this user or point gateway.data_dir at a directory that is")
    return None


def check(listens: Iterable[Listen], data_dir: Path | None,
          resolve: Resolver = socket.getaddrinfo) -> None:
    """Raise StartupError listing every problem found (blocking: call it before the loop runs)."""
    problems = [] if data_dir is None else [p for p in [data_dir_problem(data_dir)] if p]
    problems += [p for p in (bind_problem(listen, resolve) for listen in listens) if p]
    if problems:
        raise StartupError(problems)
