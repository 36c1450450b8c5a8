"""Configuration parsing: the example is valid; every error names the key path and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.sunspec.options import SunSpecOptions
from gateway import cli
from gateway.core.config import (
    PUBLISHED_SECRETS,
    ConfigError,
    Purpose,
    deployment_problems,
    load_config,
    locate,
    parse_config,
    read_config,
)
from simulator.config import SimulatorConfig

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
        options:
          host: 127.0.0.1
          port: 1502
"""


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.yaml")
    assert [s.energy_site_id for s in config.sites] == [1001, 1002, 1003]
    inverter = config.site(1001).devices[0]
    assert inverter.type == "sunspec"
    assert isinstance(inverter.options, SunSpecOptions)
    assert inverter.options.port == 15020
    assert inverter.options.unit_id == 1
    # the gateway ignores the simulator: section; the CLI reads it with the simulator's models
    assert read_config(ROOT / "config.example.yaml").section("simulator", SimulatorConfig) \
        is not None


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
         "line 13: sites[0].devices[0].colour: Extra inputs are not permitted"),
        (VALID.replace("  jwt_secret", "  jwt_secrett"), "line 2: gateway.jwt_secrett: Extra"),
        (VALID + "  - energy_site_id: 7\n    name: Twin\n    time_zone: UTC\n    devices: []\n",
         "sites[1].devices: List should have at least 1 item"),
        ("sites: [\n", "line 2: invalid YAML at column 1: expected the node content, but found "
                        "'<stream end>' (while parsing a flow node that starts on line 2)"),
        ("- just\n- a list\n", "line 1: the configuration must be a mapping"),
    ],
)
def test_errors_name_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yaml")
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_simulated_reference_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # checked by the CLI (demo, simulate, check-config), which reads the simulator: section
    path = tmp_path / "config.yaml"
    path.write_text(VALID.replace("port: 1502", "port: 1502\n        simulated: home-x/inverter"))
    assert cli.main(["check-config", str(path)]) == 1
    assert "line 13: sites[0].devices[0].simulated: simulated device 'home-x/inverter' is not " \
           "defined under simulator.homes" in capsys.readouterr().err


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_errors_name_the_file_and_line_not_pyyaml_internals(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("gateway:\n  port: [8080\nsites: []\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "<unicode string>" not in text
    assert text.startswith(f"{path}: line 3: invalid YAML at column")
    assert "\n" not in text  # one line


@pytest.mark.parametrize("host", ["", " ", "bad host", "-lead.example", "999.1.1.1", "[::1]",
                                  "a" * 64 + ".example"])
def test_gateway_hosts_must_be_addresses_or_host_names(host: str) -> None:
    for key in ("host", "proxy_host"):
        with pytest.raises(ConfigError) as info:
            parse_config(VALID.replace("gateway:\n", f"gateway:\n  {key}: '{host}'\n"))
        assert any(f"line 2: gateway.{key}:" in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "inverter.lan", "gx-1.local."])
def test_valid_hosts_pass(host: str) -> None:
    config = parse_config(VALID.replace("gateway:\n", f"gateway:\n  host: '{host}'\n")
                          .replace("host: 127.0.0.1", f"host: '{host}'"))
    assert config.gateway.host == host


def test_an_empty_device_host_is_refused_at_its_device() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(VALID.replace("host: 127.0.0.1", "host: ''"))
    assert any("line 8: sites[0].devices[0]: host is empty" in p for p in info.value.problems)


def test_the_example_secret_is_known_as_published() -> None:
    # serve refuses PUBLISHED_SECRETS: the example's secret must be one of them
    assert load_config(ROOT / "config.example.yaml").gateway.jwt_secret in PUBLISHED_SECRETS


def _problems(text: str, purpose: Purpose = "serve", env: str | None = None) -> list[str]:
    config = parse_config(text)
    return locate(deployment_problems(config, purpose=purpose, env_secret=env), text)


GOOD_SECRET = "kV3q9Zr0Xw2Lp7Ns4Ty8Bc1Hd6Jf5Gm0Qa"
EXAMPLE_SECRET = next(iter(PUBLISHED_SECRETS))


def test_a_config_fit_to_serve_has_no_problems() -> None:
    assert _problems(VALID) == []


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (VALID.replace("a-test-secret-of-some-length-0123456789", EXAMPLE_SECRET), None,
         "line 2: gateway.jwt_secret: the secret is the example published in config.example.yaml"),
        (VALID.replace("jwt_secret: a-test-secret-of-some-length-0123456789", "port: 8080"), None,
         "gateway.jwt_secret: no JWT secret; generate one with  python -c 'import secrets; "
         "print(secrets.token_urlsafe(48))'"),
        (VALID, "short-secret", "the secret in ENERGY_GATEWAY_JWT_SECRET (it overrides "
                                "gateway.jwt_secret) is 12 bytes, HS256 needs at least 32"),
        (VALID, EXAMPLE_SECRET, "the secret in ENERGY_GATEWAY_JWT_SECRET (it overrides "
                                "gateway.jwt_secret) is the example published"),
    ],
)
def test_serve_refuses_published_missing_and_short_secrets(
        text: str, env: str | None, expected: str) -> None:
    problems = _problems(text, env=env)
    assert len(problems) == 1
    assert expected in problems[0]
    assert "ENERGY_GATEWAY_JWT_SECRET environment variable" in problems[0]  # where the fix goes


def test_a_good_environment_secret_overrides_the_example() -> None:
    text = VALID.replace("a-test-secret-of-some-length-0123456789", EXAMPLE_SECRET)
    assert _problems(text, env=GOOD_SECRET) == []


def test_the_demo_only_warns_about_the_secret() -> None:
    config = load_config(ROOT / "config.example.yaml")
    problems = deployment_problems(config, purpose="demo", env_secret=None)
    assert [(p.loc, p.severity) for p in problems] == [(("gateway", "jwt_secret"), "warning")]
    assert "an error for serve" in problems[0].message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("gateway:\n", "gateway:\n  port: 0\n"),
         "line 2: gateway.port: 0 picks a random free port no client can find"),
        (("port: 1502", "port: 1502\n        proxy_port: 8080"),
         "line 13: sites[0].devices[0].proxy_port: port 8080 is already taken by gateway.port"),
        (("port: 1502", "port: 1502\n        proxy_port: 0"),
         "line 13: sites[0].devices[0].proxy_port: 0 picks a random free port"),
        (("port: 1502", "port: 8080"),
         "line 12: sites[0].devices[0].options.port: 127.0.0.1:8080 is the gateway's own "
         "gateway.port"),
        (("port: 1502", "port: 1502\n        poll_interval_s: 0.0001"),
         "line 13: sites[0].devices[0].poll_interval_s: 0.0001 s is out of range; allowed 0.1 "
         "to 3600 s"),
        (("port: 1502", "port: 1502\n          timeout_s: 0.0001"),
         "line 13: sites[0].devices[0].options.timeout_s: 0.0001 s is out of range; allowed 0.1 "
         "to 600 s"),
        (("port: 1502", "port: 1502\n        poll_interval_s: 5\n        stale_after_s: 2"),
         "sites[0].devices[0].stale_after_s: 2 s is shorter than poll_interval_s (5 s)"),
        (("gateway:\n", "gateway:\n  command_timeout_s: 1000000\n"),
         "line 2: gateway.command_timeout_s: 1e+06 s is out of range; allowed 0.5 to 300 s"),
        (("gateway:\n", "gateway:\n  reconcile_interval_s: 0.001\n"),
         "line 2: gateway.reconcile_interval_s: 0.001 s is out of range; allowed 1 to 86400 s"),
    ],
)
def test_deployment_checks_name_key_line_and_allowed_values(
        edit: tuple[str, str], expected: str) -> None:
    problems = _problems(VALID.replace(*edit))
    assert any(expected in p for p in problems), problems


def test_two_proxies_on_one_port_clash() -> None:
    text = VALID.replace("port: 1502", "port: 1502\n        proxy_port: 1600") + """\
  - energy_site_id: 8
    name: Twin
    time_zone: UTC
    devices:
      - {name: inverter, type: sunspec, options: {host: 127.0.0.2, port: 1502}, proxy_port: 1600}
"""
    problems = _problems(text)
    assert any("line 18: sites[1].devices[0].proxy_port: port 1600 is already taken by "
               "sites[0].devices[0].proxy_port" in p for p in problems), problems


def test_simulator_ports_must_not_clash_with_the_gateway(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"  # the CLI checks the simulator: section (demo, check-config)
    path.write_text((ROOT / "config.example.yaml").read_text().replace("port: 15000", "port: 8080"))
    assert cli.main(["check-config", "--for", "demo", str(path)]) == 1
    problems = capsys.readouterr().err.splitlines()
    assert any("simulator.control.port: port 8080 is already taken by gateway.port" in p
               for p in problems), problems


def test_the_example_config_is_fit_for_the_demo() -> None:
    loaded = read_config(ROOT / "config.example.yaml")
    sim = loaded.section("simulator", SimulatorConfig)
    assert sim is not None
    problems = deployment_problems(loaded.config, purpose="demo", env_secret=None,
                                   others=cli._simulator_listeners(sim))
    assert [p for p in problems if p.severity == "error"] == []


def test_models_still_accept_ephemeral_ports_and_short_intervals_for_tests() -> None:
    text = VALID.replace("gateway:\n", "gateway:\n  port: 0\n").replace(
        "port: 1502", "port: 1502\n        poll_interval_s: 0.01")
    config = parse_config(text)
    assert config.gateway.port == 0


# ---- driver options under options: (issue 10) ------------------------------------------------

FLAT = """\
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
        poll_interval_s: 2
"""

MQTT_BATTERY = """\
gateway:
  jwt_secret: a-test-secret-of-some-length-0123456789
sites:
  - energy_site_id: 7
    name: Test
    time_zone: Europe/Berlin
    devices:
      - name: battery
        type: mqtt_battery
        stale_after_s: 30
        options:
          host: 127.0.0.1
          stale_after_s: 4
          points:
            soc_pct: {state_topic: b/state, value_path: soc}
            battery_w: {state_topic: b/state, value_path: power}
"""


def test_driver_options_are_the_drivers_model_validated_at_load() -> None:
    device = parse_config(VALID).site(7).devices[0]
    assert isinstance(device.options, SunSpecOptions)
    assert (device.options.host, device.options.port, device.options.unit_id) == \
        ("127.0.0.1", 1502, 1)
    assert device.options.model_fields_set == {"host", "port"}  # what the file says


def test_the_gateways_and_the_drivers_stale_after_s_are_both_settable_and_distinct() -> None:
    from drivers.mqtt_battery.options import MqttBatteryOptions

    device = parse_config(MQTT_BATTERY).site(7).devices[0]
    assert isinstance(device.options, MqttBatteryOptions)
    assert device.stale_after_s == 30
    assert device.stale_limit_s == 30  # the gateway's: how long it serves the last reading
    assert device.options.stale_after_s == 4  # the driver's: how old a point may get


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("port: 1502", "port: 99999"),
         "line 12: sites[0].devices[0].options.port: Input should be less than or equal to 65535"),
        (("port: 1502", "port: 1502\n          colour: blue"),
         "line 13: sites[0].devices[0].options.colour: Extra inputs are not permitted"),
        (("          host: 127.0.0.1\n", ""),
         "line 10: sites[0].devices[0].options.host: Field required"),
        (("        options:\n          host: 127.0.0.1\n          port: 1502\n", ""),
         "line 8: sites[0].devices[0].options: Field required"),
        (("        options:\n          host: 127.0.0.1\n          port: 1502\n", "        options: 5\n"),
         "line 10: sites[0].devices[0].options: Input should be a valid dictionary or instance of "
         "SunSpecOptions"),
    ],
)
def test_option_errors_name_the_options_key_path_and_line(
        edit: tuple[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(VALID.replace(*edit))
    assert expected in info.value.problems, info.value.problems


def test_option_errors_deep_in_a_drivers_model_name_their_key_path_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MQTT_BATTERY.replace("{state_topic: b/state, value_path: power}",
                                          "{state_topic: b/state, value_path: power, scale: 0}"))
    assert info.value.problems == [
        "line 16: sites[0].devices[0].options.points.battery_w.scale: scale must not be 0"]


def test_the_flat_form_still_loads_and_names_each_moved_key() -> None:
    from gateway.core.config import parse

    loaded = parse(FLAT, "old.yaml")
    device = loaded.config.site(7).devices[0]
    assert isinstance(device.options, SunSpecOptions)
    assert (device.options.host, device.options.port, device.poll_interval_s) == \
        ("127.0.0.1", 1502, 2)
    assert [str(d) for d in loaded.deprecations] == [
        "line 10: sites[0].devices[0].host -> sites[0].devices[0].options.host",
        "line 11: sites[0].devices[0].port -> sites[0].devices[0].options.port",
    ]


def test_errors_in_the_flat_form_point_at_the_line_the_key_is_on() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(FLAT.replace("port: 1502", "port: 99999"))
    assert info.value.problems == [
        "line 11: sites[0].devices[0].options.port: Input should be less than or equal to 65535"]
    text = FLAT.replace("port: 1502", "port: 1502\n        timeout_s: 0.0001")
    assert _problems(text) == [  # deployment checks too
        "line 12: sites[0].devices[0].options.timeout_s: 0.0001 s is out of range; allowed 0.1 "
        "to 600 s"]


def test_a_flat_stale_after_s_stays_the_gateways_and_says_where_the_drivers_goes() -> None:
    from drivers.mqtt_battery.options import MqttBatteryOptions
    from gateway.core.config import parse

    flat = MQTT_BATTERY.replace("        options:\n", "").replace("          ", "        ") \
        .replace("        stale_after_s: 4\n", "")
    loaded = parse(flat)
    device = loaded.config.site(7).devices[0]
    assert isinstance(device.options, MqttBatteryOptions)
    assert (device.stale_limit_s, device.options.stale_after_s) == (30, 10)  # as before issue 10
    assert [str(d) for d in loaded.deprecations] == [
        "line 11: sites[0].devices[0].host -> sites[0].devices[0].options.host",
        "line 12: sites[0].devices[0].points -> sites[0].devices[0].options.points",
        "line 10: sites[0].devices[0].stale_after_s: stays the gateway's key; the mqtt_battery "
        "driver's own stale_after_s goes to sites[0].devices[0].options.stale_after_s",
    ]


def test_driver_options_beside_an_options_key_fail_with_where_to_move_them() -> None:
    mixed = VALID.replace("        options:\n          host: 127.0.0.1\n",
                          "        host: 127.0.0.1\n        options:\n")
    with pytest.raises(ConfigError) as info:
        parse_config(mixed)
    assert info.value.problems == [
        "line 11: sites[0].devices[0].options.host: Field required",
        "line 10: sites[0].devices[0].host: a sunspec driver option outside options:; move it to "
        "sites[0].devices[0].options.host (the old flat form loads only when a device has no "
        "options: key)",
    ]


def test_a_simulator_section_is_accepted_and_ignored_by_the_gateway() -> None:
    config = parse_config(VALID + "simulator: {homes: not-a-list, anything: 1}\n")
    assert "simulator" not in type(config).model_fields
    assert config.site(7).devices[0].simulated is None
