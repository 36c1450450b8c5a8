"""Reconciliation compares what a device holds with what was applied, at device resolution."""

from __future__ import annotations

import pytest

from drivers.base import Capability, Setpoints, holds

ALL = frozenset(Capability)
RESERVE_ONLY = frozenset({Capability.BACKUP_RESERVE})


def sp(reserve: int = 20, grid_charging: bool = True, **watts: int | None) -> Setpoints:
    return Setpoints(reserve_pct=reserve, grid_charging=grid_charging, **watts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("held", "wanted", "caps", "expected"),
    [
        (sp(), sp(), ALL, True),
        (sp(20), sp(21), ALL, False),
        # a device without grid-charging control cannot drift on it
        (sp(grid_charging=False), sp(grid_charging=True), RESERVE_ONLY, True),
        # -3333 W written, -3350 W held: the device's 1 % steps, not drift
        (sp(battery_w=-3350), sp(battery_w=-3333), ALL, True),
        (sp(battery_w=-2000), sp(battery_w=-3333), ALL, False),
        (sp(battery_w=None), sp(battery_w=-3333), ALL, False),
        (sp(export_limit_w=None), sp(export_limit_w=0), ALL, False),
        (sp(export_limit_w=80), sp(export_limit_w=0), ALL, True),
    ],
)
def test_holds(held: Setpoints, wanted: Setpoints, caps: frozenset[Capability],
               expected: bool) -> None:
    assert holds(held, wanted, caps) is expected
