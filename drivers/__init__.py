"""Device drivers: one package per device family behind the small protocols of ``drivers.base``.

``drivers.registry.DRIVERS`` maps each configured ``type`` to its driver class;
``drivers.options.DRIVER_OPTIONS`` maps it to the driver's options model without importing any
transport (the configuration is validated with it). Importing this package imports nothing else.
"""
