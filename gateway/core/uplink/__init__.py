"""The uplink's MQTT topic and payload contract between edge gateways and the hub (pure)."""
