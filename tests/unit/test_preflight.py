"""Start-up checks against this machine: busy ports, foreign or unresolvable hosts, unwritable data_dir."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.runtime import preflight
from gateway.runtime.preflight import Listen


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process-like listener holds."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


GATEWAY = Listen("gateway.host", "127.0.0.1", "gateway.port", 0)


def test_a_free_port_passes() -> None:
    assert preflight.bind_problem(GATEWAY) is None


def test_a_busy_port_names_its_key(busy_port: int) -> None:
    listen = Listen("gateway.host", "127.0.0.1", "gateway.port", busy_port)
    assert preflight.bind_problem(listen) == (
        f"gateway.port: 127.0.0.1:{busy_port} is already in use (another energy-gateway or "
        "simulator?); stop it or choose another gateway.port")


def test_an_address_of_another_machine_names_the_host_key() -> None:
    listen = Listen("gateway.host", "192.0.2.1", "gateway.port", 0)  # TEST-NET-1: never local
    assert preflight.bind_problem(listen) == (
        "gateway.host: 192.0.2.1 is not an address of this machine; use 127.0.0.1 or one of its "
        "own addresses")


def test_an_unresolvable_host_names_the_host_key() -> None:
    # the resolver stands in for DNS (tests stay on loopback); the real one raises the same
    def resolve(host: str, *_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    listen = Listen("gateway.host", "gatway.lan", "gateway.port", 8080)
    assert preflight.bind_problem(listen, resolve) == (
        "gateway.host: cannot resolve 'gatway.lan' (Name or service not known); use an address "
        "of this machine such as 127.0.0.1")


def test_an_unwritable_data_dir_names_the_key(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    problem = preflight.data_dir_problem(blocker / "data")
    assert problem is not None
    assert problem.startswith(f"gateway.data_dir: cannot write to {blocker / 'data'} (Not a "
                              "directory); make it writable")
    assert preflight.data_dir_problem(tmp_path / "new" / "data") is None
    assert (tmp_path / "new" / "data").is_dir()
    assert list((tmp_path / "new" / "data").iterdir()) == []  # the probe leaves nothing behind


def test_check_reports_every_problem_at_once(tmp_path: Path, busy_port: int) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(preflight.StartupError) as info:
        preflight.check([GATEWAY, Listen("gateway.proxy_host", "127.0.0.1",
                                         "sites[0].devices[0].proxy_port", busy_port)],
                        blocker / "data")
    assert [p.split(":")[0] for p in info.value.problems] == [
        "gateway.data_dir", "sites[0].devices[0].proxy_port"]
