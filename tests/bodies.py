"""A served body is its response model: it validates, reads back unchanged, and fits /openapi.json."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema_rs
import orjson
from pydantic import BaseModel

from gateway.web.errors import to_json
from gateway.web.openapi import build_openapi, ref


@cache
def _document() -> dict[str, Any]:
    return build_openapi()


def assert_body_is(model: type[BaseModel], body: bytes) -> Any:
    """Check ``body`` (JSON bytes as served) against ``model``; return it decoded.

    The model validates it (no unknown key, no missing one, every type right), serialising the
    validated model gives the same JSON back (so no key is present that the renderer would leave
    out, e.g. a ``null`` where the key must be absent), and the document's schema of ``model``
    accepts it, date-time formats included.
    """
    decoded = orjson.loads(body)
    validated = model.model_validate_json(body)
    assert orjson.loads(to_json(validated)) == decoded
    schema = {**ref(model), "components": _document()["components"]}
    jsonschema_rs.validator_for(schema, validate_formats=True).validate(decoded)
    return decoded
