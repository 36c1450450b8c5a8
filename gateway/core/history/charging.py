"""Wall Connector charging sessions as history reports them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ChargeSession:
    """One Wall Connector charging session: aware ``start``, ``duration_s`` s, ``energy_wh`` Wh."""

    start: datetime
    duration_s: float
    energy_wh: float
