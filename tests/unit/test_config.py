"""Configuration parsing: the example is valid; every error names the key path and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]

VALID = """\
gateway:
  jwt_secret: a-test-secret-of-some-length-0123456789
sites:
  - energy_site_id: 7
    name: Test
    time_zone: Europe/Berlin
    devices:
      - name: inverter
        type: sunspec
        host: 127.0.0.1
        port: 1502
"""


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.yaml")
    assert [s.energy_site_id for s in config.sites] == [1001, 1002, 1003]
    inverter = config.site(1001).devices[0]
    assert inverter.type == "sunspec"
    assert inverter.options["port"] == 15020
    assert inverter.options["unit_id"] == 1
    assert config.simulator is not None


def test_minimal_config_parses_with_defaults() -> None:
    config = parse_config(VALID)
    assert config.gateway.port == 8080
    assert config.site(7).devices[0].stale_limit_s == 5.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID.replace("time_zone: Europe/Berlin", "time_zone: Mars/Olympus"),
         "line 6: sites[0].time_zone: 'Mars/Olympus' is not an IANA time zone"),
        (VALID.replace("energy_site_id: 7", "energy_site_id: seven"),
         "line 4: sites[0].energy_site_id"),
        (VALID.replace("type: sunspec", "type: toaster"),
         "line 8: sites[0].devices[0]: unknown device type 'toaster'; valid types:"),
        (VALID.replace("port: 1502", "port: 1502\n        colour: blue"),
         "line 12: sites[0].devices[0].colour: Extra inputs are not permitted"),
        (VALID.replace("  jwt_secret", "  jwt_secrett"), "line 2: gateway.jwt_secrett: Extra"),
        (VALID + "  - energy_site_id: 7\n    name: Twin\n    time_zone: UTC\n    devices: []\n",
         "sites[1].devices: List should have at least 1 item"),
        ("sites: [\n", "line 2: invalid YAML"),
        ("- just\n- a list\n", "line 1: the configuration must be a mapping"),
    ],
)
def test_errors_name_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yaml")
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_simulated_reference_must_exist() -> None:
    text = VALID.replace("port: 1502", "port: 1502\n        simulated: home-x/inverter")
    with pytest.raises(ConfigError, match=r"not defined under simulator\.homes"):
        parse_config(text)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
