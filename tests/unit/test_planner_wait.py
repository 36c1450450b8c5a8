"""The planner service's waits follow domain time: a step boundary is never skipped at any speed."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import cast

import pytest

from gateway.core.config.planner import PlannerConfig
from gateway.runtime.clock import InProcessClock
from gateway.runtime.planner import WAKE_S, PlannerService
from gateway.runtime.site import Site


@pytest.mark.parametrize(
    ("now", "speed", "expected_s"),
    [
        (datetime(2026, 6, 21, 12, 0, 10, tzinfo=UTC), 1.0, WAKE_S),  # real time: every WAKE_S
        (datetime(2026, 6, 21, 12, 0, 10, tzinfo=UTC), 100.0, WAKE_S * 100),
        (datetime(2026, 6, 21, 12, 0, 10, tzinfo=UTC), 900.0, 1790.0),  # up to the next step
        (datetime(2026, 6, 21, 12, 0, 10, tzinfo=UTC), 3600.0, 1790.0),  # not past it
        (datetime(2026, 6, 21, 12, 29, 59, tzinfo=UTC), 3600.0, 1.0),
        (datetime(2026, 6, 21, 12, 0, 10, tzinfo=UTC), 0.0, WAKE_S),  # frozen: as at speed 1
    ],
)
def test_wait_ends_at_the_next_step_in_domain_time(now: datetime, speed: float, expected_s: float) -> None:
    site = SimpleNamespace(id=1001, config=SimpleNamespace(planner=PlannerConfig(step_min=30)))
    timebase = InProcessClock(lambda: now, lambda: speed)
    service = PlannerService(cast(Site, site), timebase=timebase)
    assert service.wait_s() == pytest.approx(expected_s)
