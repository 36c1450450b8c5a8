"""The hub: one Fleet API for every site of every connected edge gateway (docs/hub.md)."""
