"""Generic MQTT devices configured per point: options, pure point helpers and the driver."""
