"""The pure floor: settings, policy, the site reading, domain errors, tariff and history rules (no I/O)."""
