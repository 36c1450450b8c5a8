"""Unit tests of the simulator's configuration models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from simulator.config import load_simulator_config


def section(**home: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "home-1", "devices": [{"id": "inverter", "kind": "sunspec"}]}
    base.update(home)
    return {"homes": [base]}


def test_defaults() -> None:
    cfg = load_simulator_config(section())
    assert cfg.tick_s == 0.1
    assert cfg.clock_speed == 1.0
    assert cfg.control.host == "127.0.0.1"
    assert cfg.homes[0].devices[0].port == 0
    assert cfg.homes[0].time_zone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        (section(time_zone="Mars/Olympus"), "time_zone"),
        (section(initial_soc_pct=120), "initial_soc_pct"),
        (section(unknown_key=1), "unknown_key"),
        ({**section(), "start": "2024-06-21T12:00:00"}, "start"),
        (section(devices=[{"id": "x", "kind": "victron"}]), "kind"),
        (section(devices=[{"id": "x", "kind": "sunspec"}] * 2), "unique"),
        ({"homes": section()["homes"] * 2}, "unique"),
    ],
)
def test_bad_config_names_the_problem(mapping: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        load_simulator_config(mapping)
