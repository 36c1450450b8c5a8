"""Files that only mypy runs: compile-time proofs about our types."""
