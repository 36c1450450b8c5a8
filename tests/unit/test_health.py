"""/health's device entry from the poller's record of a device: the fields agree in every state."""

from __future__ import annotations

import orjson
import pytest

from drivers.sunspec.driver import SunSpecDriver, SunSpecOptions
from drivers.transport import Transports
from gateway.core.config import DeviceConfig
from gateway.runtime.devices import DeviceState
from gateway.web.errors import to_json
from gateway.web.renderers.health import device_health

NOW = 1000.0


def handle(*, received_ago_s: float | None, failures: int) -> DeviceState:
    config = DeviceConfig.model_validate({"name": "inverter", "type": "sunspec",
                                          "poll_interval_s": 1.0, "stale_after_s": 10.0,
                                          "options": {"host": "127.0.0.1"}})  # fmt: skip
    driver = SunSpecDriver("inverter", SunSpecOptions(host="127.0.0.1"), Transports())
    h = DeviceState(config, driver)
    h.received_at = None if received_ago_s is None else NOW - received_ago_s
    h.failures = failures
    h.last_error = "DeviceUnreachable: refused" if failures else None
    return h


# poll 1 s: fresh within 2.5 s, stale limit 10 s
@pytest.mark.parametrize(("received_ago_s", "failures", "quality", "connected"), [
    (None, 0, "offline", False),  # before the first read
    (None, 3, "offline", False),  # never reached
    (0.5, 0, "fresh", True),
    (0.5, 1, "stale", False),  # just failed: the last values are recent, but not fresh any more
    (5.0, 0, "stale", True),  # answering, but the poll ran late
    (5.0, 2, "stale", False),
    (11.0, 0, "offline", False),  # nothing good within the stale limit
    (11.0, 4, "offline", False),
])  # fmt: skip
def test_device_health(received_ago_s: float | None, failures: int, quality: str, connected: bool) -> None:
    entry = orjson.loads(to_json(device_health(handle(received_ago_s=received_ago_s,
                                                      failures=failures), NOW)))
    assert (entry["quality"], entry["connected"]) == (quality, connected)
    assert entry["data_age_s"] == received_ago_s
    assert (entry["last_error"] is None) == (failures == 0)
