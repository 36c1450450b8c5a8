"""Unit tests of pure code: codecs, tariff rules, policy, physics, history."""
