"""The HTTP floor: the Fleet API app, auth, rate limits, handlers, renderers and the error table."""
