"""The transport-free protocol core (no web framework, no SQL library)."""
