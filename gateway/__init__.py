"""energy-gateway: the Fleet API energy_sites dialect served from local devices."""
