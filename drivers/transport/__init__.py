"""The process-wide device transports the gateway owns and hands to every driver."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.transport.modbus import ModbusEndpoint, ModbusPool, Priority
from drivers.transport.mqtt import MqttBroker, MqttPool, Subscription

__all__ = ["ModbusEndpoint", "ModbusPool", "MqttBroker", "MqttPool", "Priority", "Subscription", "Transports"]


@dataclass
class Transports:
    """Shared connection pools: one per process, closed on shutdown."""

    modbus: ModbusPool = field(default_factory=ModbusPool)
    mqtt: MqttPool = field(default_factory=MqttPool)

    async def close(self) -> None:
        """Close every connection of every pool."""
        await self.modbus.close()
        await self.mqtt.close()
