"""Grid outages: tracked from readings of ``grid_up``, and the ones a history window reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from gateway.core.history.windows import HistoryQueryError, Window

# The most outages one backup answer lists.
MAX_EVENTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Outage:
    """A grid outage from ``start`` to ``end`` (aware; ``end`` None while it lasts)."""

    start: datetime
    end: datetime | None = None

    def duration_s(self, now: datetime) -> float:
        """Seconds off-grid, counting an open outage up to ``now``."""
        stop = self.end if self.end is not None else now
        return max((stop - self.start).total_seconds(), 0.0)


class OutageTracker:
    """Turns a stream of ``(timestamp, grid_up)`` readings into outage events (pure)."""

    def __init__(self, current: Outage | None = None) -> None:
        """Start tracking; pass the open outage from the store to resume after a restart."""
        self._current = current if current is not None and current.end is None else None

    @property
    def current(self) -> Outage | None:
        """The outage in progress, if any."""
        return self._current

    def update(self, at: datetime, grid_up: bool | None) -> Outage | None:
        """Feed one reading; return the outage that opened (``end`` None) or closed, if any.

        ``grid_up`` None (unknown) changes nothing.
        """
        if grid_up is None:
            return None
        if not grid_up and self._current is None:
            self._current = Outage(start=at)
            return self._current
        if grid_up and self._current is not None:
            closed = Outage(start=self._current.start, end=max(at, self._current.start))
            self._current = None
            return closed
        return None


def outages_in(
    events: Iterable[Outage], window: Window, *, max_events: int = MAX_EVENTS
) -> list[Outage]:
    """The outages ``window`` reports: those that start inside it, oldest first.

    Counting by start means adjacent windows never report one outage twice; an open start
    (``window.start`` None) reports every outage before the end.

    Raises:
        HistoryQueryError: more than ``max_events`` outages start in the window (naming
            ``start_date``, the limit and how to ask instead).
    """
    start = window.start
    chosen = sorted(
        (e for e in events if (start is None or start <= e.start) and e.start < window.end),
        key=lambda e: e.start,
    )
    if len(chosen) > max_events:
        raise HistoryQueryError(
            "start_date",
            f"the window holds more than {max_events} outages; one answer lists at most "
            f"{max_events}: ask for a later start_date or an earlier end_date",
        )
    return chosen
