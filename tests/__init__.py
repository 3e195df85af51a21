"""datakit's own tests; a package only so that `tests.support` imports by name."""
