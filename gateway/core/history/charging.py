"""Wall Connector charging sessions as history reports them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from gateway.core.history.outages import MAX_EVENTS
from gateway.core.history.windows import HistoryQueryError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChargeSession:
    """One Wall Connector charging session: aware ``start``, ``duration_s`` s, ``energy_wh`` Wh."""

    start: datetime
    duration_s: float
    energy_wh: float


def listable(sessions: Sequence[T]) -> Sequence[T]:
    """``sessions`` (queried with a limit of ``MAX_EVENTS`` + 1) when one answer may list them.

    Raises:
        HistoryQueryError: the window holds more than ``MAX_EVENTS``.
    """
    if len(sessions) > MAX_EVENTS:
        raise HistoryQueryError(
            "start_date",
            f"the window holds more than {MAX_EVENTS} charging sessions; one answer lists at "
            f"most {MAX_EVENTS}: ask for a later start_date or an earlier end_date")
    return sessions
