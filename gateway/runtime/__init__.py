"""The live floor: device state and pollers, sites and their command pipeline, storage, history, the Gateway."""
