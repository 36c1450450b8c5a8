"""The import contracts (pyproject.toml, checked by lint-imports in `make test`) catch each violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# One injected import per contract: (file in the copied tree, the line appended, contract broken).
VIOLATIONS = (
    ("simulator/clock.py", "import gateway.core.errors", "simulator-standalone"),
    ("drivers/errors.py", "import simulator.clock", "drivers-standalone"),
    ("gateway/core/reading.py", "import asyncio", "core-pure"),
    ("gateway/core/errors.py", "import aiohttp", "core-pure"),
    ("gateway/core/settings.py", "import drivers.transport.modbus", "core-pure"),
    ("gateway/runtime/clock.py", "import simulator.clock", "simulator-only-from-cli"),
    ("gateway/runtime/devices.py", "import gateway.web.errors", "floors"),
)


def _tree(tmp_path: Path) -> Path:
    """A copy of the three packages and the contracts, importable ahead of the installed ones."""
    for package in ("gateway", "drivers", "simulator"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _broken(output: str) -> set[str]:
    """Names of the contracts lint-imports reports BROKEN."""
    return {line.removesuffix(" BROKEN") for line in output.splitlines()
            if line.endswith(" BROKEN")}


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    """Contract id -> contract name, from pyproject.toml."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c["name"] for c in contracts["contracts"]}


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_contract_catches_an_injected_import(tmp_path: Path, names: dict[str, str]) -> None:
    root = _tree(tmp_path)
    for relative, line, _ in VIOLATIONS:
        path = root / relative
        path.write_text(path.read_text() + f"\n{line}  # injected by the test\n")
    result = _lint(root)
    assert result.returncode != 0
    assert _broken(result.stdout) == {names[contract] for *_, contract in VIOLATIONS}
    for _, line, _ in VIOLATIONS:  # each injected import is named in the report
        assert line.split()[-1] in result.stdout
