"""SunSpec Modbus devices: options, the sans-IO codec (codec.py) and the driver (driver.py)."""
