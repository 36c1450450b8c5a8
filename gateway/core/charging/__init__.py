"""EV charging rules: session accounting, the solar-surplus rule, the off-grid reserve rule."""
