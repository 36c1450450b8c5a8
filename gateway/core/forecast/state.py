"""What the planner learned, as JSON and back: kept across restarts (pure; bad input is refused)."""

from __future__ import annotations

from typing import Any, Final

from gateway.core.forecast.horizon import Learned
from gateway.core.forecast.profiles import DailyProfile, PvCorrection, no_default

STATE_VERSION: Final = 1


def learned_to_json(learned: Learned) -> dict[str, Any]:
    """The learned profiles and PV correction as a JSON-ready dict."""
    return {"v": STATE_VERSION, "load": learned.load.state(),
            "pv_profile": learned.pv_profile.state(), "pv_correction": learned.pv_correction.state()}


def learned_from_json(data: object, *, slots: int) -> Learned:
    """The state ``learned_to_json`` wrote, for profiles of ``slots`` slots.

    Raises:
        ValueError: another version or slot count, or a value that is not what it should be
            (the caller starts afresh and says so); the text names the part.
    """
    if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} planner state")
    learned = Learned(load=DailyProfile(slots=slots),
                      pv_profile=DailyProfile(slots=slots, default=no_default),
                      pv_correction=PvCorrection())
    for name, part in (("load", learned.load), ("pv_profile", learned.pv_profile),
                       ("pv_correction", learned.pv_correction)):
        state = data.get(name)
        if not isinstance(state, dict):
            raise ValueError(f"{name}: missing")  # noqa: TRY004 - one error for bad state
        try:
            part.restore(state)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return learned
