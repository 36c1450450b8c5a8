"""Energy history: power flows, 5-minute buckets, query windows and outages (pure)."""

from gateway.core.history.buckets import BUCKET, Bucket, BucketAccumulator, bucket_start
from gateway.core.history.charging import ChargeSession
from gateway.core.history.entries import MAX_ENTRIES, EntryPlan, plan_energy, sum_by_entry
from gateway.core.history.flows import (
    FLOW_NAMES,
    MAX_GAP,
    FlowEnergy,
    Flows,
    PowerSample,
    integrate,
    split_flows,
)
from gateway.core.history.outages import MAX_EVENTS, Outage, OutageTracker, outages_in
from gateway.core.history.windows import (
    PERIODS,
    HistoryQueryError,
    Period,
    Window,
    clip_window,
    parse_datetime,
    resolve_window,
    zone,
)

__all__ = [
    "BUCKET",
    "FLOW_NAMES",
    "MAX_ENTRIES",
    "MAX_EVENTS",
    "MAX_GAP",
    "PERIODS",
    "Bucket",
    "BucketAccumulator",
    "ChargeSession",
    "EntryPlan",
    "FlowEnergy",
    "Flows",
    "HistoryQueryError",
    "Outage",
    "OutageTracker",
    "Period",
    "PowerSample",
    "Window",
    "bucket_start",
    "clip_window",
    "integrate",
    "outages_in",
    "parse_datetime",
    "plan_energy",
    "resolve_window",
    "split_flows",
    "sum_by_entry",
    "zone",
]
