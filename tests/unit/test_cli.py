"""The command line: serve refuses weak secrets and bad hosts/ports in one line; token issue|list|revoke."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from gateway import cli
from gateway.core.config import JWT_SECRET_ENV, PUBLISHED_SECRETS
from gateway.runtime.storage import DB_NAME, tokens
from gateway.runtime.storage.schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
SECRET = "cli-test-secret-0123456789abcdefghijkl"
CONFIG = """\
gateway:
  port: {port}
  data_dir: {data_dir}
  jwt_secret: {secret}
  rate_limits:
    plans: {{standard: {{per_minute: 60}}, small: {{per_minute: 5}}}}
sites:
  - energy_site_id: 1001
    name: Home
    time_zone: Europe/Berlin
    devices:
      - {{name: inverter, type: sunspec, options: {{host: 127.0.0.1, port: 1502}}}}
  - energy_site_id: 1002
    name: Cabin
    time_zone: UTC
    devices:
      - {{name: inverter, type: sunspec, options: {{host: 127.0.0.1, port: 1503}}}}
"""


def _config(tmp_path: Path, *, secret: str = SECRET, port: int = 18080,
            data_dir: Path | None = None) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.format(port=port, secret=secret, data_dir=data_dir or tmp_path / "data"))
    return path


@pytest.fixture(autouse=True)
def _no_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JWT_SECRET_ENV, raising=False)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as a user runs it (exit code, stderr, no shared state)."""
    return subprocess.run([sys.executable, "-m", "gateway.cli", *argv], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _main_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The CLI in this process (the refusals come before any logging or event loop)."""
    assert cli.main(list(argv)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---- defect 5: serve and the example secret -------------------------------------------------


def test_serve_refuses_the_published_example_secret(tmp_path: Path) -> None:
    path = _config(tmp_path, secret=next(iter(PUBLISHED_SECRETS)))
    line = _one_line_error(_run("serve", "--config", str(path)))  # a real process, as run
    assert line.startswith(f"{path}: line 4: gateway.jwt_secret: the secret is the example "
                           "published in config.example.yaml")
    assert "secrets.token_urlsafe(48)" in line
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_serve_refuses_a_missing_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path)
    path.write_text(path.read_text().replace(f"  jwt_secret: {SECRET}\n", ""))
    line = _main_error(capsys, "serve", "--config", str(path))
    assert line.startswith(f"{path}: line 1: gateway.jwt_secret: no JWT secret; generate one")


def test_serve_refuses_a_short_secret_from_the_environment(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(JWT_SECRET_ENV, "too-short")
    line = _main_error(capsys, "serve", "--config", str(_config(tmp_path)))
    assert "the secret in ENERGY_GATEWAY_JWT_SECRET (it overrides gateway.jwt_secret) is 9 " \
           "bytes, HS256 needs at least 32" in line


def test_check_config_reports_the_example_secret_for_serve(
        capsys: pytest.CaptureFixture[str]) -> None:
    example = str(ROOT / "config.example.yaml")
    line = _main_error(capsys, "check-config", "--for", "serve", example)
    assert line.startswith(f"{example}: line 11: gateway.jwt_secret: the secret is the example "
                           "published")
    assert cli.main(["check-config", example]) == 0  # every device simulated: judged for demo
    out, err = capsys.readouterr()
    assert out == f"{example}: ok for demo (3 sites, 4 devices)\n"
    assert err.startswith(f"{example}: warning: line 11: gateway.jwt_secret:")


# ---- defect 7: start-up failures are one line naming the key ----------------------------------


def test_serve_on_a_busy_port_says_so_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = _config(tmp_path, port=port)
        line = _main_error(capsys, "serve", "--config", str(path))
    assert line == (f"{path}: gateway.port: 127.0.0.1:{port} is already in use (another "
                    "energy-gateway or simulator?); stop it or choose another gateway.port")


def test_serve_with_an_unwritable_data_dir_says_so_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    path = _config(tmp_path, data_dir=tmp_path / "a-file" / "data")
    line = _main_error(capsys, "serve", "--config", str(path))
    assert line.startswith(f"{path}: gateway.data_dir: cannot write to ")


def test_serve_on_a_database_from_a_newer_gateway_says_so_in_one_line(tmp_path: Path) -> None:
    import socket
    import sqlite3

    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / DB_NAME)
    with db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (99)")
    db.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = _config(tmp_path, port=port, data_dir=data)
    line = _one_line_error(_run("serve", "--config", str(path)))  # a real process, as run
    assert line == (f"{path}: cannot start the gateway: {data / DB_NAME} has schema version 99, "
                    f"newer than this gateway's ({SCHEMA_VERSION}): it was written by a newer "
                    "energy-gateway; run that version, or restore a backup made for this one")


def test_serve_on_an_address_of_another_machine_says_so_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("gateway:\n", "gateway:\n  host: 192.0.2.1\n"))
    line = _main_error(capsys, "serve", "--config", str(path))
    assert line == f"{path}: gateway.host: 192.0.2.1 is not an address of this machine; use " \
                   "127.0.0.1 or one of its own addresses"


def test_check_config_refuses_port_0_and_absurd_intervals(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, port=0)
    path.write_text(path.read_text().replace("port: 1502}}", "port: 1502}, poll_interval_s: 0.0001}")
                    .replace("port: 0", "port: 0\n  host: ''"))
    assert cli.main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: line 3: gateway.host: is empty; give an address such as 127.0.0.1"]
    path.write_text(path.read_text().replace("  host: ''\n", ""))
    assert cli.main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: line 2: gateway.port: 0 picks a random free port no client can find; choose a "
        "port from 1 to 65535",
        f"{path}: line 12: sites[0].devices[0].poll_interval_s: 0.0001 s is out of range; allowed "
        "0.1 to 3600 s",
    ]


# ---- token issue | list | revoke --------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--scopes", ""], "--scopes is empty; give at least one of energy_cmds, energy_device_data"),
        (["--scopes", " , "], "--scopes is empty"),
        (["--scopes", "energy_everything"], "--scopes: unknown energy_everything; known scopes:"),
        (["--sites", "abc"], "--sites: 'abc' is not a site id; give comma-separated "
                             "energy_site_id values, e.g. 1001"),
        (["--sites", "1001,9999"], "--sites: 9999 not in this config; its sites are 1001, 1002"),
        (["--sites", ","], "--sites is empty; leave it out"),
        (["--ttl", "100y"], "--ttl: invalid ttl '100y'"),
        (["--ttl", "400d"], "--ttl: invalid ttl '400d': the longest is 365d (1 year)"),
        (["--plan", "gold"], "--plan: unknown plan 'gold'; this config has small, standard"),
        (["--sub", " "], "--sub is empty"),
    ],
)
def test_token_issue_refuses_bad_options_clearly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str,
) -> None:
    argv = ["token", "issue", "--config", str(_config(tmp_path)), "--scopes", "energy_device_data"]
    assert cli.main(argv + options) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"energy-gateway: error: {message}")
    assert "invalid literal" not in err
    assert not (tmp_path / "data").exists()  # nothing recorded


def test_token_issue_refuses_the_example_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, secret=next(iter(PUBLISHED_SECRETS)))
    assert cli.main(["token", "issue", "--config", str(path), "--scopes", "energy_cmds"]) == 1
    assert "gateway.jwt_secret: the secret is the example" in capsys.readouterr().err


def test_token_issue_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(_config(tmp_path))
    assert cli.main(["token", "issue", "--config", path, "--scopes", "energy_device_data",
                     "--sites", "1002", "--sub", "home-assistant", "--plan", "small",
                     "--ttl", "12h"]) == 0
    token = capsys.readouterr().out
    assert token.count("\n") == 1  # the token and nothing else
    claims = jwt.decode(token.strip(), SECRET, algorithms=["HS256"])
    assert (claims["sites"], claims["plan"], claims["exp"] - claims["iat"]) == ([1002], "small",
                                                                               43_200)
    assert cli.main(["token", "list", "--config", path]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["jti", "sub", "env", "scopes", "sites", "plan", "expires",
                                  "status"]
    assert listing[1].split()[:6] == [claims["jti"], "home-assistant", "live",
                                      "energy_device_data", "1002", "small"]
    assert listing[1].endswith("active")
    assert token.strip() not in (tmp_path / "data" / tokens.DB_NAME).read_bytes().decode(
        errors="replace")

    assert cli.main(["token", "revoke", "--config", path, claims["jti"]]) == 0
    assert capsys.readouterr().out.startswith(f"revoked {claims['jti']} (sub home-assistant")
    assert cli.main(["token", "list", "--config", path]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("revoked")
    assert cli.main(["token", "revoke", "--config", path, "not-a-jti"]) == 2
    assert "no token with jti 'not-a-jti'" in capsys.readouterr().err


def _all_actions(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += [(f"{name} {n}", a) for n, a in _all_actions(child)]
        elif not isinstance(action, argparse._HelpAction):
            found.append((parser.prog, action))
    return found


def test_every_option_has_help_text() -> None:
    actions = _all_actions(cli._parser())
    assert len(actions) > 15
    missing = [f"{where} {a.dest}" for where, a in actions if not a.help]
    assert missing == []


# ---- the demo's banner ------------------------------------------------------------------------


def test_demo_banner_is_a_calm_summary() -> None:
    banner = cli.demo_banner(
        url="http://127.0.0.1:8080", control_url="http://127.0.0.1:15000", token="TKN",
        per_run_secret=True, sites=[
            cli.SiteLine(1001, "Sunny Home", (cli.DeviceLine("inverter", "sunspec", "online"),),
                         "solar 3.2 kW, battery 55 %, grid +0.0 kW"),
            cli.SiteLine(1002, "Cabin", (cli.DeviceLine("gx", "victron_gx",
                                                        "offline (connection refused)"),), ""),
        ])
    lines = banner.splitlines()
    assert "  gateway    http://127.0.0.1:8080" in lines
    assert ("  site 1001  Sunny Home  inverter (sunspec) online  [solar 3.2 kW, battery 55 %, "
            "grid +0.0 kW]") in lines
    assert "  site 1002  Cabin       gx (victron_gx) offline (connection refused)" in lines
    assert "  export TOKEN=TKN" in lines
    assert any("valid until this demo stops" in line for line in lines)
    assert any("1001/live_status" in line for line in lines)
    assert """    curl -s -d '{"speed": 600}' http://127.0.0.1:15000/clock  (homes and gateway 600x """ \
        """faster)""" in lines
    assert len(lines) < 25


# ---- the flat form of driver options (issue 10) -------------------------------------------------


def test_check_config_names_each_key_of_the_old_flat_form_and_its_new_place(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("options: {host: 127.0.0.1, port: 1502}",
                                             "host: 127.0.0.1, port: 1502"))
    assert cli.main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: ok for serve (2 sites, 2 devices)\n"
    assert err.splitlines() == [
        f"{path}: warning: driver options beside name and type are deprecated: they go under the "
        "device's options: key (this file still loads)",
        f"{path}: warning: line 12: sites[0].devices[0].host -> sites[0].devices[0].options.host",
        f"{path}: warning: line 12: sites[0].devices[0].port -> sites[0].devices[0].options.port",
    ]


def test_check_config_says_how_to_move_options_written_beside_an_options_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("options: {host: 127.0.0.1, port: 1502}",
                                             "port: 1502, options: {host: 127.0.0.1}"))
    line = _main_error(capsys, "check-config", str(path))
    assert line == (f"{path}: line 12: sites[0].devices[0].port: a sunspec driver option outside "
                    "options:; move it to sites[0].devices[0].options.port (the old flat form "
                    "loads only when a device has no options: key)")


def test_the_revoke_help_quotes_the_registrys_refresh() -> None:
    assert cli.REVOKED_WITHIN_S == tokens.REFRESH_S
