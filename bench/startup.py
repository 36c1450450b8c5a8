"""Start-up: wall time and peak RSS of `--help`, the serve path and `serve` against the dependencies alone.

Run: ``.venv/bin/python -m bench.startup [--quick] [--runs N] [--tree PATH ...]``

Each ``--tree`` is a checkout of the project (default: this one), run with the same interpreter
and venv (``PYTHONPATH`` and the working directory point at the tree). For every tree, in one
interleaved run so that noise from other tenants hits every figure alike:

- ``bare``: ``python -c pass`` (the interpreter alone, the floor);
- ``deps``: a process that only imports the runtime dependencies (aiohttp, pymodbus.client,
  aiomqtt, pydantic, structlog, tenacity, yaml, jwt, orjson, paho) — the baseline;
- ``--help``: ``python -m gateway.cli --help``;
- ``serve imports``: a process that imports every project module ``serve`` has loaded when it
  prints its banner (found by a probe run of ``serve`` in that tree) and nothing else;
- ``serve to banner``: ``python -m gateway.cli serve`` against a one-device config (the device is
  an unreachable loopback port) until it prints its banner, then SIGINT; its wall time is to the
  banner, its RSS the process's peak.

Wall time is from spawn to exit (for ``serve``: to the banner; the others include the
interpreter's teardown); peak RSS is the child's ``ru_maxrss`` and CPU its user + system time
(for ``serve`` its whole life, stop included), both from ``wait4``. A bare launcher process
(``bench/_launch.py``) spawns each child and takes the figures: Linux counts the spawning
process's memory in a child's peak, so the bench itself must not be the parent. Medians over the
runs, with ratios to ``deps`` of the same tree.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import ROOT, machine, median, print_table

DEPENDENCIES = ("aiohttp", "pymodbus.client", "aiomqtt", "pydantic", "structlog", "tenacity",
                "yaml", "jwt", "orjson", "paho.mqtt.client")
PROJECT = ("gateway", "drivers", "simulator")
SECRET = "bench-startup-secret-0123456789-abcdefgh"  # noqa: S105 - a throwaway bench key
BANNER = "energy-gateway serving http://"
LAUNCHER = Path(__file__).resolve().parent / "_launch.py"
_TIMEOUT_S = 120.0
_REPORT = """\
import json, sys
class _Out:  # at the banner, report every module loaded so far on stderr
    def __init__(self, out): self._out = out
    def __getattr__(self, name): return getattr(self._out, name)
    def write(self, text):
        if text.startswith("energy-gateway serving"):
            print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr, flush=True)
        return self._out.write(text)
sys.stdout = _Out(sys.stdout)
from gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""

@dataclass(frozen=True)
class Sample:
    """One child process: seconds (to exit, or to the banner), peak RSS in MiB, CPU seconds."""

    wall_s: float
    rss_mib: float
    cpu_s: float  # user + system over the whole life (for serve: to its stop after the banner)
    killed: bool = False  # serve did not stop within 10 s of SIGINT (its start was complete)


@dataclass
class Tree:
    """A checkout under test, the config form it reads, and what serve loads from it."""

    path: Path
    label: str
    workdir: Path
    nested: bool = True  # driver options under options: (else the flat form of before issue 10)
    serve_modules: tuple[str, ...] = ()
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    serves: int = 0

    def serve_config(self) -> Path:
        """A fresh serve config: new ports (a previous run's socket may linger), new data_dir."""
        self.serves += 1
        path = self.workdir / f"serve-{self.serves}.yaml"
        path.write_text(_config_text(self.workdir / f"data-{self.serves}", nested=self.nested))
        return path


def _free_ports(count: int) -> list[int]:
    """Ports free on the loopback right now, all different (held open together while chosen)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _env(tree: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(tree),
            "HOME": os.environ.get("HOME", "/tmp")}  # noqa: S108 - a default, not a temp file


def _launch(tree: Path, mode: str, argv: Sequence[str], stderr: Path | None = None) -> Sample:
    """One child of ``tree``'s interpreter, through the bare launcher (see bench/_launch.py)."""
    launcher = [sys.executable, "-I", "-S", str(LAUNCHER), mode,
                *([BANNER] if mode == "banner" else []), str(tree), sys.executable, *argv]
    with (stderr.open("w") if stderr else open(os.devnull, "w")) as err:
        done = subprocess.run(launcher, env=_env(tree), stdout=subprocess.PIPE, stderr=err,
                              text=True, check=False, timeout=_TIMEOUT_S)
    result = json.loads(done.stdout)
    started = mode == "banner" and result["line"].startswith(BANNER)
    if not (started and result["killed"]) and (result["rc"] != 0 or (
            mode == "banner" and not started)):
        where = f"; its stderr is in {stderr}" if stderr else ""
        raise SystemExit(f"{tree}: {' '.join(argv)} failed: {result}{where}")
    return Sample(result["wall_s"], result["rss_mib"], result["cpu_s"], result["killed"])


def run_once(tree: Path, argv: Sequence[str]) -> Sample:
    """A child to its exit; it must succeed."""
    return _launch(tree, "exit", argv)


def _config_text(data_dir: Path, *, nested: bool) -> str:
    gateway_port, device_port = _free_ports(2)  # the device's: nothing listens there
    device = ("        options: {host: 127.0.0.1, port: %d}\n" if nested
              else "        host: 127.0.0.1\n        port: %d\n") % device_port
    return (f"gateway:\n  port: {gateway_port}\n  data_dir: {data_dir}\n  jwt_secret: {SECRET}\n"
            "sites:\n  - energy_site_id: 1001\n    name: Bench\n    time_zone: Europe/Berlin\n"
            "    devices:\n      - name: inverter\n        type: sunspec\n" + device)


def config_form(tree: Tree) -> bool:
    """Whether this tree reads driver options under options: (else the flat form)."""
    refused = ""
    for nested in (True, False):
        tree.nested = nested
        check = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "check-config", str(tree.serve_config())],
            cwd=tree.path, env=_env(tree.path), capture_output=True, text=True, check=False,
            timeout=_TIMEOUT_S)
        if check.returncode == 0:
            return nested
        refused += check.stderr
    raise SystemExit(f"{tree.path}: check-config refuses both forms:\n{refused}")


def serve_to_banner(tree: Tree, *, report: bool = False) -> tuple[Sample, str]:
    """``serve`` until its banner, then SIGINT: (time to banner and peak RSS, its stderr)."""
    argv = ["-c", _REPORT] if report else ["-m", "gateway.cli"]
    config = tree.serve_config()
    err_path = tree.workdir / f"serve-{tree.serves}.err"
    sample = _launch(tree.path, "banner", [*argv, "--log-format", "json", "--log-level", "WARNING",
                                           "serve", "--config", str(config)], err_path)
    return sample, err_path.read_text()


def probe_serve_modules(tree: Tree) -> tuple[str, ...]:
    """The project modules a real ``serve`` of this tree has loaded when it prints its banner."""
    _, stderr = serve_to_banner(tree, report=True)
    for line in stderr.splitlines():
        if line.startswith("MODULES "):
            loaded: list[str] = json.loads(line.removeprefix("MODULES "))
            return tuple(m for m in loaded if m.split(".")[0] in PROJECT)
    raise SystemExit(f"{tree.path}: the serve probe reported no modules:\n{stderr}")


def measure(trees: Sequence[Tree], runs: int) -> None:
    """Interleave every figure of every tree, ``runs`` times."""
    cases: dict[str, Callable[[Tree], Sample]] = {
        "bare": lambda t: run_once(t.path, ["-c", "pass"]),
        "deps": lambda t: run_once(t.path, ["-c", "import " + ", ".join(DEPENDENCIES)]),
        "--help": lambda t: run_once(t.path, ["-m", "gateway.cli", "--help"]),
        "serve imports": lambda t: run_once(t.path, ["-c", "import " + ", ".join(t.serve_modules)]),
        "serve to banner": lambda t: serve_to_banner(t)[0],
    }
    for i in range(runs):
        for name, case in cases.items():
            for tree in trees:
                tree.samples.setdefault(name, []).append(case(tree))
        print(f"  run {i + 1}/{runs} done", file=sys.stderr, flush=True)


def report(trees: Sequence[Tree], runs: int) -> None:
    """One table per tree: medians and ratios to ``deps``; then the simulator check."""
    for tree in trees:
        deps = tree.samples["deps"]
        deps_wall = median([s.wall_s for s in deps])
        deps_rss = median([s.rss_mib for s in deps])
        deps_cpu = median([s.cpu_s for s in deps])
        rows = []
        for name, samples in tree.samples.items():
            wall = median([s.wall_s for s in samples])
            rss = median([s.rss_mib for s in samples])
            cpu = median([s.cpu_s for s in samples])
            rows.append([name, round(wall * 1000), f"{wall / deps_wall:.2f}x", f"{rss:.1f}",
                         f"{rss / deps_rss:.2f}x", round(cpu * 1000), f"{cpu / deps_cpu:.2f}x"])
        print_table(f"Start-up of {tree.label} ({tree.path}), medians of {runs} runs", [
            "process", "wall ms", "wall / deps", "peak RSS MiB", "RSS / deps", "CPU ms",
            "CPU / deps"], rows)
        sim = sorted(m for m in tree.serve_modules if m.split(".")[0] == "simulator")
        killed = sum(s.killed for s in tree.samples["serve to banner"])
        print(f"\nserve loads {len(tree.serve_modules)} project modules, "
              f"{len(sim)} of them from simulator/; {killed} serve run(s) did not stop within "
              "10 s of SIGINT and were killed (after a complete start)")


def main() -> None:
    """Parse options, probe each tree, measure interleaved, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tree", action="append", type=Path, default=None,
                        help="a checkout to measure (repeatable; default: this one)")
    parser.add_argument("--runs", type=int, default=15, help="runs of each figure (default 15)")
    parser.add_argument("--quick", action="store_true", help="5 runs")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    paths = [p.resolve() for p in (args.tree or [ROOT])]
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        trees = []
        for i, path in enumerate(paths):
            workdir = Path(tmp) / str(i)
            workdir.mkdir()
            head = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True, check=False).stdout.strip()
            tree = Tree(path, head or path.name, workdir)
            tree.nested = config_form(tree)
            tree.serve_modules = probe_serve_modules(tree)
            trees.append(tree)
        measure(trees, runs)
    report(trees, runs)


if __name__ == "__main__":
    main()
