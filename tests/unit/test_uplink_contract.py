"""The uplink contract: topic names both ways, payload validation, the hub file and its token."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import cli
from gateway.core.config import ConfigError
from gateway.core.config.hub import is_hub_config, parse_hub_config
from gateway.core.uplink.contract import (
    MAX_PAYLOAD_BYTES,
    CommandMessage,
    ContractError,
    LiveMessage,
    Topics,
    decode,
    encode,
)

T = Topics("egw/v1/")


@pytest.mark.parametrize(("topic", "parsed"), [
    ("egw/v1/edge-a/presence", ("edge-a", "presence", None)),
    ("egw/v1/edge-a/commands", ("edge-a", "commands", None)),
    ("egw/v1/edge-a/outcomes", ("edge-a", "outcomes", None)),
    ("egw/v1/edge-a/sites/1001/info", ("edge-a", "info", 1001)),
    ("egw/v1/edge-a/sites/1001/live", ("edge-a", "live", 1001)),
    ("egw/v1/edge-a/sites/1001/history", ("edge-a", "history", 1001)),
    ("egw/v1/edge-a/sites/1001/outages", ("edge-a", "outages", 1001)),
    ("egw/v1/edge-a/sites/1001/charges", ("edge-a", "charges", 1001)),
    ("egw/v1/edge-a/sites/x/live", None),
    ("egw/v1/edge-a/sites/1001/other", None),
    ("egw/v1/edge+a/presence", None),
    ("egw/v1/edge-a/presence/extra", None),
    ("other/edge-a/presence", None),
    ("egw/v1/edge-a/sites/12345678901234567/live", None),
])
def test_topics_parse(topic: str, parsed: tuple[str, str, int | None] | None) -> None:
    assert T.parse(topic) == parsed


def test_topics_round_trip() -> None:
    for topic in (T.presence("g"), T.info("g", 7), T.live("g", 7), T.history("g", 7),
                  T.outages("g", 7), T.charges("g", 7), T.commands("g"), T.outcomes("g")):
        assert T.parse(topic) is not None


@pytest.mark.parametrize(("kind", "payload", "why"), [
    ("live", b"{", "Invalid JSON"),
    ("live", b'{"v": 2, "site_id": 1, "seq": 1, "live_status": null, "at": 1}', "v"),
    ("live", b'{"v": 1, "site_id": 0, "seq": 1, "live_status": null, "at": 1}', "site_id"),
    ("live", b'{"v": 1, "site_id": 1, "seq": 1, "live_status": null, "at": 1, "x": 1}', "x"),
    ("commands", b'{"v": 1, "command_id": "a b", "site_id": 1, "command": "backup", "body": {},'
                 b' "expires_at": 1}', "command_id"),
    ("commands", b'{"v": 1, "command_id": "a", "site_id": 1, "command": "Backup!", "body": {},'
                 b' "expires_at": 1}', "command"),
    ("live", b" " * (MAX_PAYLOAD_BYTES + 1), "exceeds"),
    ("outages", b'{"v": 1, "site_id": 1, "outages": [{"start": 1, "stop": 2}], "at": 1}', "stop"),
    ("charges", b'{"v": 1, "site_id": 1, "sessions": [{"start": 1, "duration_s": -5, '
                b'"energy_wh": 1}], "at": 1}', "duration_s"),
    ("outages", b'{"v": 1, "site_id": 1, "outages": [' + b",".join([b'{"start": 1}'] * 501)
     + b'], "at": 1}', "outages"),
])
def test_decode_refuses(kind: str, payload: bytes, why: str) -> None:
    with pytest.raises(ContractError, match=why):
        decode(kind, payload)


def test_encode_decode_round_trip() -> None:
    live = LiveMessage(site_id=1001, seq=3, live_status={"solar_power": 1}, at=1.5)
    assert decode("live", encode(live)) == live
    command = CommandMessage(command_id="k:1", site_id=1, command="backup",
                             body={"backup_reserve_percent": 20}, expires_at=2.0)
    assert decode("commands", encode(command)) == command


HUB = """\
hub:
  port: 8091
  jwt_secret: hub-test-secret-0123456789abcdefghijkl
  postgres_dsn: postgresql://postgres@127.0.0.1:5432/energy_hub
  rate_limits:
    plans: {standard: {per_minute: 60}, small: {per_minute: 5}}
  mqtt: {host: 127.0.0.1, port: 1883, base_topic: egw/v1}
"""


def test_hub_config_is_told_apart_and_errors_name_the_line() -> None:
    assert is_hub_config({"hub": {}})
    assert not is_hub_config({"gateway": {}, "sites": []})
    config = parse_hub_config(HUB)
    assert config.hub.mqtt.base_topic == "egw/v1"
    with pytest.raises(ConfigError, match=r"line 3: hub.command_timeout_s"):
        parse_hub_config("hub:\n  port: 1\n  command_timeout_s: -1\n")


def test_the_example_hub_file_parses() -> None:
    root = Path(__file__).resolve().parents[2]
    config = parse_hub_config((root / "hub.example.yaml").read_text(), "hub.example.yaml")
    assert config.hub.mqtt.base_topic == "energy-gateway/v1"


def test_hub_refuses_to_start_without_a_real_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ENERGY_GATEWAY_JWT_SECRET", raising=False)
    root = Path(__file__).resolve().parents[2]
    assert cli.main(["hub", "--config", str(root / "hub.example.yaml")]) == 1
    assert "hub.jwt_secret: no JWT secret" in capsys.readouterr().err
