"""Puts the repository root on sys.path, so every test imports `tests.support` by name."""

from __future__ import annotations

import sys

from datakit.paths import PROJECT_DIR

if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))
