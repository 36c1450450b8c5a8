"""``gateway.clock``: where the gateway's time comes from, validated with the key path and line."""

from __future__ import annotations

import pytest

from gateway.core.config import ConfigError, Purpose, deployment_problems, parse_config
from gateway.runtime.clock import FollowedClock, Timebase, timebase_for

BASE = """\
gateway:
  jwt_secret: a-test-secret-of-some-length-0123456789
{clock}sites:
  - energy_site_id: 7
    name: Test
    time_zone: Europe/Berlin
    devices:
      - name: inverter
        type: sunspec
        options: {{host: 127.0.0.1, port: 1502}}
"""


def config_with(clock: str) -> str:
    return BASE.format(clock=clock)


def test_the_wall_clock_is_the_default() -> None:
    config = parse_config(config_with(""))
    assert config.gateway.clock.source == "wall"
    timebase = timebase_for(config.gateway.clock)
    assert type(timebase) is Timebase
    assert timebase.speed == 1.0


@pytest.mark.parametrize("url", ["http://127.0.0.1:15000", "http://127.0.0.1:15000/",
                                 "http://[::1]:15000", "https://sim.example:8443/base"])
def test_a_simulator_source_follows_its_url(url: str) -> None:
    config = parse_config(config_with(f"  clock: {{source: simulator, url: '{url}'}}\n"))
    timebase = timebase_for(config.gateway.clock)
    assert isinstance(timebase, FollowedClock)
    assert timebase.url == url.rstrip("/")
    assert config.gateway.clock.sync_interval_s == 2.0


@pytest.mark.parametrize(("clock", "expected"), [
    ("  clock: {source: simulator}\n", "line 3: gateway.clock: source: simulator "
                                       "needs the simulator's control API url"),
    ("  clock: {source: ntp}\n", "line 3: gateway.clock.source: Input should be 'wall' or "
                                 "'simulator'"),
    ("  clock: {source: simulator, url: '127.0.0.1:15000'}\n",
     "gateway.clock.url: '127.0.0.1:15000' is not an http:// or https:// URL"),
    ("  clock: {source: simulator, url: 'http://bad_host:1'}\n",
     "gateway.clock.url: 'bad_host' is neither an IP address nor a valid host name"),
    ("  clock: {source: simulator, url: 'http://127.0.0.1:99999'}\n",
     "gateway.clock.url: port 99999 is outside 1..65535"),
    ("  clock: {source: simulator, url: 'http://127.0.0.1:1', sync_interval_s: 0}\n",
     "gateway.clock.sync_interval_s: Input should be greater than or equal to 0.1"),
    ("  clock: {source: simulator, url: 'http://127.0.0.1:1', speed: 5}\n",
     "gateway.clock.speed: Extra inputs are not permitted"),
])
def test_a_clock_that_cannot_work_is_refused(clock: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_with(clock), "test.yaml")
    assert any(expected in p for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(("purpose", "says"), [
    ("serve", "tariff periods, history and the journal run on simulated time"),
    ("demo", "the demo follows its own simulator and does not read it"),
])
def test_check_config_warns_of_a_followed_clock(purpose: Purpose, says: str) -> None:
    config = parse_config(config_with("  clock: {source: simulator, url: 'http://127.0.0.1:1'}\n"))
    problems = [p for p in deployment_problems(config, purpose=purpose, env_secret=None)
                if p.loc == ("gateway", "clock", "source")]
    assert [(p.severity, says in p.message) for p in problems] == [("warning", True)]
    assert not [p for p in deployment_problems(parse_config(config_with("")), purpose=purpose,
                                               env_secret=None) if p.loc[:2] == ("gateway", "clock")]
