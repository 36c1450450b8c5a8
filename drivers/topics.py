"""MQTT topic and filter rules (pure): what may be published to and subscribed with."""

from __future__ import annotations


def valid_topic(topic: str) -> bool:
    """True if ``topic`` may be published to (non-empty, no wildcards, no NUL)."""
    return bool(topic) and not any(c in topic for c in "+#\0")


def valid_filter(topic_filter: str) -> bool:
    """True if ``topic_filter`` is a valid MQTT subscription filter (``+`` and ``#`` used whole)."""
    if not topic_filter or "\0" in topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True
