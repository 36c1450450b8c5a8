"""Declarative Modbus profiles: one data file per model family (drivers/profiles/), one engine and driver."""
