"""An MQTT storm-alert message: a bool, or JSON with an event and an end, parsed into an alert or a clear."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import orjson

from gateway.core.storm.alerts import FeedError, StormAlert, aware, clip

#: The largest message read; a storm flag is a few bytes, a JSON alert a few hundred.
MAX_PAYLOAD_BYTES: Final = 16_384
#: The longest an MQTT alert may last from its message (a week: longer is a mistake).
MAX_DURATION_S: Final = 7 * 86_400
SOURCE: Final = "mqtt"
DEFAULT_EVENT: Final = "Storm alert (MQTT)"
_TRUE: Final = frozenset({"true", "1", "on", "yes"})
_FALSE: Final = frozenset({"false", "0", "off", "no", ""})


def parse_mqtt_payload(payload: bytes, *, now: datetime, topic: str = "") -> StormAlert | None:
    """The alert a message raises, or None for a message that clears it.

    Accepted: ``true``/``false``, ``1``/``0``, ``on``/``off``, ``yes``/``no`` (any case; an
    empty retained message clears), or a JSON object
    ``{"active": true, "event": "...", "ends": "ISO 8601", "duration_s": 3600, "onset": ...,
    "headline": "..."}`` where every key is optional (``active`` defaults to true; ``ends`` or
    ``expires`` wins over ``duration_s``; no end means until a message clears it). An alert
    whose end has passed clears.

    Raises:
        FeedError: too large, or neither form.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FeedError(f"message of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        text = payload.decode().strip()
    except UnicodeDecodeError:
        raise FeedError("message is not UTF-8 text") from None
    word = text.lower()
    if word in _TRUE:
        return StormAlert(event=DEFAULT_EVENT, source=SOURCE, id=clip(topic))
    if word in _FALSE:
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FeedError(f"message {text[:40]!r} is neither a bool nor a JSON object") from None
    if isinstance(doc, bool):
        return StormAlert(event=DEFAULT_EVENT, source=SOURCE, id=clip(topic)) if doc else None
    if not isinstance(doc, dict):
        raise FeedError("message is JSON but not an object or a bool")
    active = doc.get("active", True)
    if not isinstance(active, bool):
        raise FeedError("active must be true or false")
    if not active:
        return None
    ends = aware(doc.get("ends"), "ends") or aware(doc.get("expires"), "expires")
    duration = doc.get("duration_s")
    if ends is None and duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int | float) \
                or not 0 < duration <= MAX_DURATION_S:
            raise FeedError(f"duration_s must be a number of seconds within 1..{MAX_DURATION_S}")
        ends = now + timedelta(seconds=duration)
    if ends is not None and ends - now > timedelta(seconds=MAX_DURATION_S):
        raise FeedError(f"ends is more than {MAX_DURATION_S // 86_400} days away")
    event = doc.get("event", DEFAULT_EVENT)
    if not isinstance(event, str) or not event.strip():
        raise FeedError("event must be a non-empty string")
    alert = StormAlert(event=clip(event.strip()), source=SOURCE,
                       onset=aware(doc.get("onset"), "onset"), ends=ends,
                       id=clip(topic), headline=clip(doc.get("headline")),
                       severity=clip(doc.get("severity")))
    return alert if alert.active(now) else None
