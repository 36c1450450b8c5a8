"""HTTP resources of the Fleet API energy_sites dialect, one module per resource group."""
