"""Durations as Locust reads them (`20`, `90s`, `5m`, `1h30m`), by Locust's own parser.

`locust.util.timespan` is loaded from its file alone: importing it the usual way runs the
`locust` package first, whose __init__ monkey-patches the whole process for gevent (the
CLI's threads and subprocesses included) and takes a large share of a second; the parser
itself needs only `re` and `datetime`.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

FORMS = "seconds (20, 2.5) or Locust's 20s, 3m, 2h, 1h30m"


@cache
def _locust_parser():
    package = importlib.util.find_spec("locust")  # finds the package without running it
    path = Path(package.submodule_search_locations[0]) / "util" / "timespan.py"
    spec = importlib.util.spec_from_file_location("datakit_locust_timespan", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_timespan


def seconds(text: str) -> float:
    """`text` in seconds: a plain number (fractions too), else Locust's timespan; a
    ValueError names the forms that are understood."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(_locust_parser()(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not a duration: use {FORMS}") from None
