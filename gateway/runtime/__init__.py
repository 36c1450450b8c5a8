"""The live floor: device state, pollers, sites and their command pipeline, storage, history, the Gateway."""
