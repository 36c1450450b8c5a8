"""Five-minute energy buckets: integrating successive power samples into aligned UTC intervals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from gateway.core.history.flows import MAX_GAP, FlowEnergy, PowerSample, integrate

BUCKET: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Bucket:
    """Energy that flowed during ``[start, start + 5 min)``; ``start`` is UTC and aligned."""

    start: datetime
    energy: FlowEnergy


def bucket_start(at: datetime, size: timedelta = BUCKET) -> datetime:
    """The UTC start of the bucket of length ``size`` containing the aware instant ``at``."""
    at_utc = at.astimezone(UTC)
    seconds = int(size.total_seconds())
    epoch = int(at_utc.timestamp() // seconds) * seconds
    return datetime.fromtimestamp(epoch, UTC)


class BucketAccumulator:
    """Integrates successive power samples into 5-minute energy buckets (pure; no clock).

    ``add`` returns the buckets completed by the new sample; the bucket still filling stays inside
    until a later sample passes its end or ``flush`` hands it out. Because the store adds bucket
    energy on conflict, a flushed partial bucket and its later remainder sum correctly.
    """

    def __init__(self, *, size: timedelta = BUCKET, max_gap: timedelta = MAX_GAP) -> None:
        """Create an empty accumulator.

        Args:
            size: bucket length; must divide an hour into whole seconds.
            max_gap: longest interval between samples that is still integrated.
        """
        seconds = size.total_seconds()
        if seconds <= 0 or seconds != int(seconds) or 3600 % int(seconds):
            raise ValueError("bucket size must be a whole number of seconds dividing 3600")
        self._size = size
        self._max_gap = max_gap
        self._prev: PowerSample | None = None
        self._open: dict[datetime, FlowEnergy] = {}

    @property
    def last_sample(self) -> PowerSample | None:
        """The sample the next interval starts from."""
        return self._prev

    def add(self, sample: PowerSample, *, max_gap: timedelta | None = None) -> list[Bucket]:
        """Integrate from the previous sample to ``sample``; return buckets now complete.

        A sample not later than the previous one is ignored. ``max_gap`` overrides the
        accumulator's own for this interval (a clock running N times faster stretches it).
        """
        prev = self._prev
        if prev is not None and sample.taken_at <= prev.taken_at:
            return []
        self._prev = sample
        if prev is not None:
            energy = integrate(prev, sample, max_gap=max_gap or self._max_gap)
            if not energy.is_zero():
                self._spread(prev.taken_at, sample.taken_at, energy)
        now = sample.taken_at
        done = sorted(start for start in self._open if start + self._size <= now)
        return [Bucket(start, self._open.pop(start)) for start in done]

    def _spread(self, begin: datetime, end: datetime, energy: FlowEnergy) -> None:
        total = (end - begin).total_seconds()
        cursor = begin
        while cursor < end:
            start = bucket_start(cursor, self._size)
            stop = min(start + self._size, end)
            share = energy.scaled((stop - cursor).total_seconds() / total)
            self._open[start] = self._open.get(start, FlowEnergy()) + share
            cursor = stop

    def open_buckets(self) -> list[Bucket]:
        """The buckets still filling (at most one in steady state), without removing them."""
        return [Bucket(start, self._open[start]) for start in sorted(self._open)]

    def flush(self) -> list[Bucket]:
        """Hand out the buckets still filling and restart them from zero (e.g. on shutdown)."""
        out = self.open_buckets()
        self._open.clear()
        return out
