"""The deployment files: the systemd unit verified by systemd-analyze, the Dockerfile's promises,
and `serve` run as the unit runs it (state in $STATE_DIRECTORY, secret from the environment file,
a working directory it cannot write)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import cli
from tests.helpers import free_ports

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "docs" / "deploy" / "energy-gateway.service"
DOCKERFILE = ROOT / "Dockerfile"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
ENTRY = Path(sys.executable).parent / "energy-gateway"


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_unit_is_hardened_and_reads_its_secret_from_an_environment_file() -> None:
    d = _directives(UNIT.read_text())
    assert d["User"] == ["energy-gateway"] or d.get("DynamicUser") == ["yes"]
    assert d["StateDirectory"] == ["energy-gateway"]
    assert d["ProtectSystem"] == ["strict"]
    assert d["NoNewPrivileges"] == ["yes"]
    assert d["Restart"] == ["on-failure"]
    assert d["EnvironmentFile"] == ["/etc/energy-gateway/env"]
    assert d["CapabilityBoundingSet"] == [""]
    assert "--config /etc/energy-gateway/config.yaml" in d["ExecStart"][0]


@pytest.fixture
def unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's entry point (verify checks it)."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed (Debian: the systemd package)")
    text = UNIT.read_text().replace("/opt/energy-gateway/bin/energy-gateway", str(ENTRY))
    path = tmp_path / "energy-gateway.service"
    path.write_text(text)
    return path


def test_systemd_analyze_verify_finds_nothing(unit_here: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit_here)], capture_output=True,
                          text=True, timeout=30, check=False)
    # an unknown or misspelt directive is only a warning on stderr: none is accepted
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_systemd_analyze_security_rates_the_unit_ok(unit_here: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--threshold=20", "--no-pager",
         str(unit_here)], capture_output=True, text=True, timeout=30, check=False)
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd >= 252")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert done.returncode == 0, f"exposure {match.group(1)} > 2.0"


def test_the_dockerfile_is_slim_non_root_and_checks_status() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert stages
    assert all(s.startswith("python:3.11-slim") for s in stages)
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user
    assert not user[-1].startswith(("root", "0"))
    health = re.search(r"^HEALTHCHECK .*\n\s+CMD (.*)$", text, re.MULTILINE)
    assert health
    assert "/status" in health.group(1)
    assert "STATE_DIRECTORY=/var/lib/energy-gateway" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "data"} <= set(ignored)




@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`serve` as the unit starts it: config from init, secret from its env file, state dir set
    by the environment, started from a directory it cannot write to."""
    etc, state, cwd = tmp_path / "etc", tmp_path / "state", tmp_path / "cwd"
    etc.mkdir()
    cwd.mkdir()
    assert cli.main(["init", "--config", str(etc / "config.yaml"),
                     "--env-file", str(etc / "env")]) == 0
    port = free_ports(1)[0]
    config = (etc / "config.yaml").read_text().replace("port: 8080", f"port: {port}") \
        .replace("host: 192.168.1.50", "host: 127.0.0.1").replace("port: 502", f"port: {free_ports(1)[0]}")
    (etc / "config.yaml").write_text(config)
    key, _, secret = (etc / "env").read_text().strip().partition("=")
    env = {k: v for k, v in os.environ.items() if k not in {"XDG_STATE_HOME", key}}
    env |= {key: secret, "STATE_DIRECTORY": str(state), "HOME": str(tmp_path / "nohome")}
    cwd.chmod(0o555)
    proc = subprocess.Popen(
        [str(ENTRY), "--log-format", "json", "serve", "--config", str(etc / "config.yaml")],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", state
        assert list(cwd.iterdir()) == []  # nothing depends on the working directory
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        cwd.chmod(0o755)
        assert proc.returncode == 0, out.decode(errors="replace")
        assert secret not in out.decode(errors="replace")


def test_serve_keeps_its_state_in_the_state_directory(served: tuple[str, Path]) -> None:
    url, state = served
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{url}/status", timeout=2) as answer:  # noqa: S310
                assert answer.read() == b"ok"
                break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "serve did not answer /status"
            time.sleep(0.1)
    assert (state / "gateway.sqlite3").exists()
