"""Log rendering: capabilities and other enums print as plain strings on the console and in JSON."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog

from drivers.base import Capability
from gateway.runtime.logs import configure_logging, plain_enums


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back for the other tests."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def test_plain_enums_is_pure() -> None:
    event = {"event": "x", "capabilities": [Capability.SOLAR, Capability.BATTERY],
             "one": Capability.EXPORT_LIMIT, "set": frozenset({Capability.SOLAR}), "n": 3}
    assert plain_enums(None, "info", event) == {
        "event": "x", "capabilities": ["solar", "battery"], "one": "export_limit",
        "set": ["solar"], "n": 3}


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["console", "json"])
def test_capabilities_render_as_plain_strings(log_format: str) -> None:
    stream = io.StringIO()
    configure_logging("console" if log_format == "console" else "json", "INFO", stream=stream)
    structlog.get_logger("test").info("sunspec.connected",
                                      capabilities=sorted([Capability.EXPORT_LIMIT,
                                                           Capability.SOLAR]))
    line = re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())  # the console's colours
    assert "<Capability" not in line
    if log_format == "json":
        assert json.loads(line)["capabilities"] == ["export_limit", "solar"]
    else:
        assert "capabilities=['export_limit', 'solar']" in line
