"""Charger configuration: the OCPP section, charge points per site, and what check-config says."""

from __future__ import annotations

import pytest

from gateway.core.config import ConfigError, deployment_problems, locate, parse_config

BASE = """\
gateway:
  jwt_secret: a-test-secret-of-some-length-0123456789
{ocpp}
sites:
  - energy_site_id: 7
    name: Test
    time_zone: Europe/Berlin
    devices:
      - name: inverter
        type: sunspec
        options: {{host: 127.0.0.1, port: 1502}}
    chargers:
{chargers}
"""
OCPP = "  ocpp: {host: 127.0.0.1, port: 9000}"


def _text(chargers: str, ocpp: str = OCPP) -> str:
    return BASE.format(ocpp=ocpp, chargers=chargers)


def _problems(text: str) -> list[str]:
    config = parse_config(text)
    return locate(deployment_problems(config, purpose="serve", env_secret=None), text)


def test_a_charger_with_defaults() -> None:
    config = parse_config(_text("      - id: WB-1"))
    charger = config.sites[0].chargers[0]
    assert (charger.id, charger.password, charger.connectors, charger.mode) == (
        "WB-1", None, 1, "full")
    assert charger.rating.watts(16) == 16 * 3 * 230
    assert config.gateway.ocpp is not None
    assert config.gateway.ocpp.port == 9000
    assert _problems(_text("      - id: WB-1")) == []


@pytest.mark.parametrize(("chargers", "message"), [
    ("      - id: WB-1\n      - id: WB-1", "charge point id on more than one site or twice: WB-1"),
    ("      - {id: WB-1, min_current_a: 20, max_current_a: 16}", "min_current_a is above"),
    ("      - {id: 'has space'}", "String should match pattern"),
    ("      - {id: WB-1, password: short}", "at least 8 characters"),
    ("      - {id: WB-1, mode: turbo}", "'full' or 'solar'"),
    ("      - {id: WB-1, phases: 2}", "1 or 3"),
])
def test_bad_chargers_are_refused_naming_the_key(chargers: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_text(chargers))
    assert message in str(caught.value)


@pytest.mark.parametrize(("ocpp", "chargers", "expected"), [
    ("", "      - id: WB-1", "sites[0].chargers[0]: no gateway.ocpp section"),
    ("  ocpp: {host: 0.0.0.0, port: 9000}", "      - id: WB-1",
     "sites[0].chargers[0].id: 'WB-1' has no password and gateway.ocpp.host '0.0.0.0'"),
    ("  ocpp: {host: 127.0.0.1, port: 8080}", "      - id: WB-1",
     "gateway.ocpp.port: port 8080 is already taken by gateway.port"),
    ("  ocpp: {host: 127.0.0.1, port: 0}", "      - id: WB-1",
     "gateway.ocpp.port: 0 picks a random free port"),
])
def test_check_config_warns_about_unreachable_or_open_chargers(
        ocpp: str, chargers: str, expected: str) -> None:
    problems = _problems(_text(chargers, ocpp))
    assert any(expected in p for p in problems), problems


def test_a_password_on_an_open_host_is_fine() -> None:
    text = _text("      - {id: WB-1, password: a-long-password}",
                 "  ocpp: {host: 0.0.0.0, port: 9000}")
    assert _problems(text) == []
