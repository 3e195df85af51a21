"""The local substrate: every node is a native process on loopback ports."""
