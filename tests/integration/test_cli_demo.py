"""`energy-gateway demo` on a terminal, as a newcomer runs it: a calm banner, a working token, Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import free_ports

ROOT = Path(__file__).resolve().parents[2]




def _demo_config(tmp_path: Path) -> Path:
    text = (ROOT / "config.example.yaml").read_text()
    gateway, control, inverter, pv, broker, ocpp = free_ports(6)
    # every fixed port of the example moves (the control API also in the price feed's URL), so
    # demos of tests running side by side never meet
    for old, new in (("port: 8080", f"port: {gateway}"), ("15000", str(control)),
                     ("15020", str(inverter)), ("15030", str(pv)), ("18830", str(broker)),
                     ("9000", str(ocpp)),
                     ("data_dir: data", f"data_dir: {tmp_path / 'data'}")):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return path


def _read_until(fd: int, marker: bytes, deadline: float) -> bytes:
    out = b""
    while marker not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in time; the terminal showed:\n{out.decode(errors='replace')}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    return out


def _live_status(url: str, token: str) -> dict[str, object]:
    """The demo's live_status with its token, polled until the devices answer (or 30 s)."""
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(f"{url}/api/1/energy_sites/1001/live_status",  # noqa: S310
                                     headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
                body: dict[str, object] = json.load(answer)["response"]
                return body
        except urllib.error.HTTPError as exc:
            if exc.code != 408 or time.monotonic() > deadline:  # 408: devices not online yet
                raise
        time.sleep(0.2)


def test_demo_on_a_terminal_shows_a_calm_banner_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    config = _demo_config(tmp_path)
    leader, follower = pty.openpty()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TERM": "dumb"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--config", str(config)],
                            stdin=follower, stdout=follower, stderr=follower, cwd=tmp_path, env=env)
    os.close(follower)
    try:
        # generous: imports and device discovery on a shared, noisy machine
        shown = _read_until(leader, b"Ctrl-C stops the demo.", time.monotonic() + 45).decode()
        lines = shown.replace("\r", "").splitlines()
        assert not any("[info" in line for line in lines), shown  # details only with --log-level
        assert "<Capability" not in shown
        assert lines[0].startswith("energy-gateway demo:"), shown
        for site in ("site 1001  Sunny Home", "site 1002  Lake Cabin", "site 1003  Mixed Home"):
            assert any(line.strip().startswith(site) for line in lines), shown
        url = next(line.split()[1] for line in lines if line.strip().startswith("gateway "))
        token = next(line.split("=", 1)[1] for line in lines if "export TOKEN=" in line)
        assert "solar_power" in _live_status(url, token)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        rest = _read_until(leader, b"demo stopped.", time.monotonic() + 30).decode()
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
