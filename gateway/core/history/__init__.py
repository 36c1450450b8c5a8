"""Energy history: power flows, 5-minute buckets, query windows and outages (pure)."""
