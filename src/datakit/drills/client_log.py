"""Where the drills' client libraries log: the run's log file, not the terminal.

librdkafka prints a line to stderr for each failed reconnect while a broker is down
(`%3|...|FAIL|rdkafka#producer-11| ... Connection refused`). The drills' Kafka clients
are given `LOGGER` instead (confluent_kafka's `logger` setting); while a run captures it,
its records go to the run's `clients.log` and are counted by level and facility, and the
report holds the counts. Outside a capture they go nowhere.

    >>> with captured(out_dir / "clients.log") as tally:
    ...     run the drill
    >>> tally.summary()
    {'lines': 14, 'file': '.../clients.log', 'by_kind': {'ERROR FAIL': 12, 'WARNING REQTMOUT': 2}}
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOGGER = logging.getLogger("datakit.drills.clients")
LOGGER.setLevel(logging.INFO)
LOGGER.propagate = False  # never the root logger's handlers, nor its stderr last resort
LOGGER.addHandler(logging.NullHandler())


class Tally(logging.Handler):
    """Counts records by level and librdkafka facility (the first argument it logs)."""

    def __init__(self, path: Path | None):
        super().__init__()
        self.path = path
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        facility = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        self.counts[f"{record.levelname} {facility}".strip()] += 1

    def summary(self) -> dict:
        return {"lines": sum(self.counts.values()),
                "file": None if self.path is None else str(self.path),
                "by_kind": dict(self.counts.most_common())}


@contextmanager
def captured(path: Path | None) -> Iterator[Tally]:
    """While inside, LOGGER's records are counted and, with `path`, written to it."""
    tally = Tally(path)
    handlers: list[logging.Handler] = [tally]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(path, delay=True)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(to_file)
    for handler in handlers:
        LOGGER.addHandler(handler)
    try:
        yield tally
    finally:
        for handler in handlers:
            LOGGER.removeHandler(handler)
            handler.close()
