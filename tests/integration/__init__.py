"""Integration tests: the simulator on free loopback ports and the gateway against it."""
