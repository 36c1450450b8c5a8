"""A lean start: `--help` loads neither the simulator nor the servers, `serve` no simulator module."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_ports

ROOT = Path(__file__).resolve().parents[2]
SECRET = "lean-start-test-secret-0123456789abcdef"
# What `energy-gateway --help` must not load (issue 10): the simulator and its brokers/servers, and
# the HTTP stack
NOT_FOR_HELP = ("simulator", "amqtt", "pymodbus.server", "aiohttp")
# Printed by the interpreter at exit: every module it loaded, as JSON
_REPORT = """\
import atexit, json, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr,
                              flush=True))
from gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}


def _modules(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.startswith("MODULES ")]
    assert len(lines) == 1, stderr
    modules: list[str] = json.loads(lines[0].removeprefix("MODULES "))
    return modules


def _loaded(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages)]


def test_help_loads_neither_the_simulator_nor_any_server() -> None:
    result = subprocess.run([sys.executable, "-c", _REPORT, "--help"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT, env=_env(), check=False)
    assert result.returncode == 0, result.stderr
    assert "check-config" in result.stdout
    modules = _modules(result.stderr)
    assert "argparse" in modules  # the report works: it lists what was loaded
    assert _loaded(modules, NOT_FOR_HELP) == []


def test_the_gateway_config_loads_without_the_simulator() -> None:
    code = ("import sys, gateway.core.config\n"
            "print([m for m in sys.modules if m == 'simulator' or m.startswith('simulator.')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, env=_env(), check=True)
    assert result.stdout.strip() == "[]"


def test_serve_runs_without_any_simulator_module(tmp_path: Path) -> None:
    # the old flat form: its deprecation is logged as a warning once logging is configured
    config = tmp_path / "serve.yaml"
    gateway_port, device_port = free_ports(2)
    config.write_text(f"""\
gateway:
  port: {gateway_port}
  data_dir: {tmp_path / "data"}
  jwt_secret: {SECRET}
sites:
  - energy_site_id: 1001
    name: Home
    time_zone: Europe/Berlin
    devices:
      - name: inverter
        type: sunspec
        host: 127.0.0.1
        port: {device_port}   # nothing listens: the device is unreachable, the gateway serves
simulator:                     # ignored by serve
  homes: [{{id: home-1001, devices: [{{id: inverter, kind: sunspec}}]}}]
""")
    proc = subprocess.Popen(
        [sys.executable, "-c", _REPORT, "--log-format", "json", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    try:
        assert proc.stdout is not None
        # not a timing bound: only a guard against a serve that hangs before its banner
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        banner = proc.stdout.readline() if ready else "(nothing within 60 s)"
        assert banner.startswith("energy-gateway serving http://127.0.0.1:"), banner
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    modules = _modules(stderr)
    assert "gateway.web.app" in modules  # the report covers the serve path
    assert _loaded(modules, ("simulator",)) == []
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    moved = [e for e in events if e["event"] == "config.deprecated_key"]
    assert [(e["level"], e["key"], e["moved_to"]) for e in moved] == [
        ("warning", "sites[0].devices[0].host", "sites[0].devices[0].options.host"),
        ("warning", "sites[0].devices[0].port", "sites[0].devices[0].options.port"),
    ]


