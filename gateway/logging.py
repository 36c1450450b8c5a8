"""structlog configured once per process: console on a terminal, JSON otherwise."""

from __future__ import annotations

import enum
import logging
import sys
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "console", "json"]


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return value


def plain_enums(_: Any, __: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """Render enum members (``Capability.EXPORT_LIMIT``) as their values: ``export_limit``."""
    for key, value in event_dict.items():
        event_dict[key] = _plain(value)
    return event_dict


def uses_console(log_format: LogFormat, stream: TextIO | None = None) -> bool:
    """Whether log lines are rendered for a person (a terminal) rather than as JSON."""
    return log_format == "console" or (
        log_format == "auto" and (sys.stderr if stream is None else stream).isatty())


def configure_logging(log_format: LogFormat = "auto", level: str = "INFO",
                      stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging (pymodbus, aiohttp, amqtt) through one renderer."""
    out = sys.stderr if stream is None else stream
    use_console = uses_console(log_format, out)
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        plain_enums,
    ]
    if not use_console:
        shared.append(structlog.processors.dict_tracebacks)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pymodbus dumps frames at ERROR on every failed request; the driver reports those itself.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)  # amqtt's state machines
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
