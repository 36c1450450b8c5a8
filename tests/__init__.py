"""The test suite: unit tests of pure code, integration tests over loopback sockets."""
