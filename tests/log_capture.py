"""The production logging configuration, written to a buffer for a test, then put back."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from gateway.runtime.logs import LogFormat, configure_logging


@contextmanager
def real_logging(log_format: LogFormat, level: str = "DEBUG") -> Iterator[io.StringIO]:
    """configure_logging(log_format) with its handler writing to the yielded buffer."""
    saved_structlog = structlog.get_config()
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    quieted = ("pymodbus", "amqtt", "transitions", "aiohttp.access")
    saved_levels = {name: logging.getLogger(name).level for name in quieted}
    buffer = io.StringIO()
    configure_logging(log_format, level)
    # A logger cached now would keep this configuration after the test and hide its events
    # from later tests' capture_logs; caching changes nothing in what is rendered.
    structlog.configure(cache_logger_on_first_use=False)
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        structlog.configure(**saved_structlog)
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        for name, saved in saved_levels.items():
            logging.getLogger(name).setLevel(saved)
