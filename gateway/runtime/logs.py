"""structlog configured once per process: console on a terminal, JSON otherwise, secrets scrubbed."""

from __future__ import annotations

import enum
import logging
import re
import sys
from collections.abc import Collection
from typing import Any, Literal, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

LogFormat = Literal["auto", "console", "json"]

REDACTED = "[REDACTED]"
# Secrets shorter than this are not scrubbed by value: replacing every "abc" would garble the
# log and a secret that short protects nothing anyway (serve requires 32 bytes).
_MIN_SECRET_CHARS = 8
_secrets: tuple[str, ...] = ()  # replaced, never mutated: a thread logging meanwhile sees old or new
_CREDENTIALS = re.compile(
    # the value of an Authorization header, in raw HTTP, a repr of a header mapping or key=value
    r"(?P<field>\b(?i:(?:proxy-)?authorization)['\"]?\s*[:=,]\s*b?['\"]?)[^'\"\r\n]+"
    # the credentials after "Bearer" (RFC 6750 b64token), wherever they are quoted
    r"|(?P<scheme>\b(?i:bearer)\s+)[A-Za-z0-9\-._~+/]{8,}=*"
    # anything shaped like a JWT/JWS: a base64url JSON header ("ey...") and one or two more parts
    r"|\bey[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?"
)
_MAX_DEPTH = 12  # how deep redaction walks nested event values (dict tracebacks nest ~5 levels)


def add_redacted_secret(secret: str) -> None:
    """Scrub ``secret`` from every log line from now on (the JWT secret, device passwords)."""
    global _secrets  # noqa: PLW0603 - one process-wide list, as the log handler is
    if len(secret) >= _MIN_SECRET_CHARS and secret not in _secrets:
        _secrets = (*_secrets, secret)


def redact_text(text: str, secrets: Collection[str] = ()) -> str:
    """``text`` with bearer credentials, JWT-shaped strings and the given secrets replaced."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _CREDENTIALS.sub(_keep_label, text)


def _keep_label(match: re.Match[str]) -> str:
    return (match.group("field") or match.group("scheme") or "") + REDACTED


def _redact_value(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return redact_text(value, _secrets)
    if depth >= _MAX_DEPTH or isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, dict):
        return {key: _redact_value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(item, depth + 1) for item in value]
    # Any other object would be rendered by its repr, which may hold a secret (a header mapping)
    return redact_text(repr(value), _secrets)


def redact(_: Any, __: str, event: Any) -> Any:
    """Processor: scrub secrets from every value of an event dict, or from a rendered line.

    Runs twice: before the renderer (so escaping in JSON or repr cannot hide a secret from it)
    and after it (so nothing the renderer added, such as an exception text, escapes it).
    """
    if isinstance(event, str):
        return redact_text(event, _secrets)
    return {key: _redact_value(value, 0) for key, value in event.items()}


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
    # Tracebacks never carry local variables: a request handler's locals hold the request and
    # its Authorization header. The console gets plain text tracebacks for the same reason (rich
    # shows locals and wraps long lines, which would split a token past the redaction).
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if use_console else structlog.processors.JSONRenderer()
    )
    tracebacks = (
        structlog.processors.format_exc_info if use_console else
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        plain_enums,
        tracebacks,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer, redact])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pymodbus dumps frames at ERROR on every failed request; the driver reports those itself.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)  # amqtt's state machines
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
