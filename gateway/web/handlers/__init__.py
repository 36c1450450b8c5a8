"""Route handlers of the Fleet API, one module per group of endpoints."""
