"""Victron GX (Venus OS) over MQTT: options, the pure dbus-flashmq codec and the driver."""
