"""The runtime's measurement hooks: what pollers, sites and the edge report, with no backend."""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    """Receives the runtime's events worth counting (``runtime/metrics.py`` turns them into
    Prometheus series); each call is cheap and never raises into the caller."""

    def poll_done(self, site_id: int, device: str, seconds: float, error: str | None) -> None:
        """One poll of ``device`` took ``seconds``; ``error`` is the exception's kind on failure."""
        ...

    def command_done(self, site_id: int, command: str, outcome: str, seconds: float) -> None:
        """A command finished: ``confirmed``, ``rejected``, ``kept`` or ``not_saved``."""
        ...

    def reapplied(self, site_id: int) -> None:
        """The control loop re-applied setpoints a device no longer held (drift)."""
        ...

    def rate_limited(self, plan: str) -> None:
        """A request was refused by its token's rate-limit plan."""
        ...


class NoObserver:
    """The observer of a runtime nobody measures (unit tests, bench baselines)."""

    def poll_done(self, site_id: int, device: str, seconds: float, error: str | None) -> None:
        pass

    def command_done(self, site_id: int, command: str, outcome: str, seconds: float) -> None:
        pass

    def reapplied(self, site_id: int) -> None:
        pass

    def rate_limited(self, plan: str) -> None:
        pass


NO_OBSERVER: Observer = NoObserver()
