"""Pure point helpers of the generic MQTT driver: topic templates, value extraction, scaling, payloads."""

from __future__ import annotations

import json
import math
from typing import Final

__all__ = [
    "MISSING",
    "Missing",
    "PointValue",
    "decode_bool",
    "decode_number",
    "expand_topic",
    "extract",
    "from_gateway",
    "json_literal",
    "render_payload",
    "same_point_value",
    "to_gateway",
]

PointValue = float | bool | None
"""A point's value in gateway units: W / % as float, a switch as bool, None = null / unlimited."""

_TRUE: Final = frozenset({"true", "on", "1", "yes", "enabled"})
_FALSE: Final = frozenset({"false", "off", "0", "no", "disabled"})


class Missing:
    """Marker: the message carries no value for this point (key absent, undecodable payload)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()


def expand_topic(template: str, base: str | None) -> str:
    """``template`` with ``{base}`` replaced by ``base``.

    Raises:
        ValueError: the template uses ``{base}`` but no base topic is configured.
    """
    if "{base}" not in template:
        return template
    if base is None:
        raise ValueError(f"topic {template!r} uses {{base}} but base_topic is not set")
    return template.replace("{base}", base.rstrip("/"))


def _parse(payload: bytes) -> object:
    text = payload.decode("utf-8", errors="strict").strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a raw, non-JSON payload such as ON or 12.5W stays a string


def extract(payload: bytes, value_path: str | None) -> object:
    """The raw value a point reads from ``payload``.

    ``value_path`` None: the whole payload (JSON scalar if it parses, else the text).
    Otherwise a dotted path into a JSON document (``data.soc``; digits index lists). A path that
    does not resolve, or a payload that is not UTF-8, gives ``MISSING``.
    """
    try:
        doc = _parse(payload)
    except UnicodeDecodeError:
        return MISSING
    if value_path is None:
        return doc
    for key in value_path.split("."):
        if isinstance(doc, dict) and key in doc:
            doc = doc[key]
        elif isinstance(doc, list) and key.isdigit() and int(key) < len(doc):
            doc = doc[int(key)]
        else:
            return MISSING
    return doc


def decode_number(raw: object, *, scale: float = 1.0, invert_sign: bool = False) -> float | Missing | None:
    """A numeric point in gateway units: ``raw`` x ``scale``, negated when ``invert_sign``.

    JSON null (and an empty payload) give None; numeric strings are accepted; anything else,
    including non-finite numbers, gives ``MISSING``.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        return MISSING
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            return MISSING
    if not isinstance(raw, int | float) or not math.isfinite(raw):
        return MISSING
    value = float(raw) * scale
    return -value if invert_sign else value


def decode_bool(raw: object) -> bool | Missing:
    """A switch point: JSON true/false, 0/1, or true/false/on/off/yes/no strings (any case)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in {0, 1}:
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return MISSING


def to_gateway(
    raw: object, *, boolean: bool, scale: float = 1.0, invert_sign: bool = False
) -> PointValue | Missing:
    """Decode one extracted raw value as a switch (``boolean``) or a scaled number."""
    if boolean:
        return decode_bool(raw)
    return decode_number(raw, scale=scale, invert_sign=invert_sign)


def from_gateway(value: PointValue, *, scale: float = 1.0, invert_sign: bool = False) -> PointValue:
    """The device value for a gateway value: the inverse of ``decode_number`` (bools and None as-is)."""
    if value is None or isinstance(value, bool):
        return value
    device = float(value) / scale
    return -device if invert_sign else device


def json_literal(value: PointValue) -> str:
    """``value`` as a JSON literal: 20 (whole numbers without .0), 2.5, true, false, null."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    rounded = round(value, 6)
    return str(int(rounded)) if float(rounded).is_integer() else repr(rounded)


def render_payload(template: str, value: PointValue) -> bytes:
    """The command payload: ``template`` with ``{value}`` replaced by the JSON literal of ``value``.

    Plain replacement, not ``str.format``: JSON templates such as ``{"value": {value}}`` keep
    their braces.
    """
    return template.replace("{value}", json_literal(value)).encode()


def same_point_value(expected: PointValue, actual: PointValue | Missing, *, tolerance: float) -> bool:
    """True when a reported value shows ``expected`` (numbers within ``tolerance``)."""
    if isinstance(actual, Missing):
        return False
    if expected is None or actual is None or isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual  # True, False and None are singletons
    return abs(float(expected) - float(actual)) <= tolerance
