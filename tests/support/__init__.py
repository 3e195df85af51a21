"""Test-only helpers, shared by the tests and the benchmarks in bench/: a throwaway
PostgreSQL server (scratch_server) and a stack derived from a shipped one with its ports
moved (derived_stack). Nothing under src/ imports them."""
