"""Where the state lives: systemd's StateDirectory, else XDG, never the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.config import read_config
from gateway.core.config.paths import default_data_dir

SITES = """
sites:
  - energy_site_id: 1001
    name: Home
    time_zone: Europe/Berlin
    devices:
      - {name: inverter, type: sunspec, options: {host: 127.0.0.1, port: 1502}}
"""


@pytest.mark.parametrize(("env", "expected"), [
    ({"STATE_DIRECTORY": "/var/lib/energy-gateway", "XDG_STATE_HOME": "/x", "HOME": "/h"},
     "/var/lib/energy-gateway"),
    ({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, "/var/lib/a"),  # several: the first
    ({"XDG_STATE_HOME": "/srv/state", "HOME": "/home/pi"}, "/srv/state/energy-gateway"),
    ({"XDG_STATE_HOME": "relative", "HOME": "/home/pi"},  # the XDG spec: ignore a relative one
     "/home/pi/.local/state/energy-gateway"),
    ({"STATE_DIRECTORY": "", "HOME": "/home/pi"}, "/home/pi/.local/state/energy-gateway"),
])
def test_default_data_dir(env: dict[str, str], expected: str) -> None:
    assert default_data_dir(env) == Path(expected)


def test_a_config_without_data_dir_uses_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "etc" / "config.yaml"
    path.parent.mkdir()
    path.write_text(SITES)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert read_config(path).config.gateway.data_dir == tmp_path / "state"


def test_a_relative_data_dir_is_relative_to_the_config_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "etc" / "config.yaml"
    path.parent.mkdir()
    path.write_text("gateway:\n  data_dir: data\n" + SITES)
    monkeypatch.chdir(tmp_path)
    assert read_config(path).config.gateway.data_dir == tmp_path / "etc" / "data"
    assert read_config(Path("etc/config.yaml")).config.gateway.data_dir == tmp_path / "etc" / "data"


def test_an_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"gateway:\n  data_dir: {tmp_path / 'elsewhere'}\n" + SITES)
    assert read_config(path).config.gateway.data_dir == tmp_path / "elsewhere"
