"""Storm watch, live: each site's alert sources (NWS poller, MQTT topic, admin call, devices) and state."""

from __future__ import annotations

from gateway.runtime.storm.mqtt import run_mqtt_source
from gateway.runtime.storm.nws import NwsPoller
from gateway.runtime.storm.watch import SourceState, StormWatch

__all__ = ["NwsPoller", "SourceState", "StormWatch", "run_mqtt_source"]
