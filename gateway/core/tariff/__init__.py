"""Time-of-use tariffs: the wire model, its validation rules and price lookup."""
