"""Disaster-recovery drills against a live stack: each injects a fault under a writer that
records every acknowledged write, watches the stack recover, then checks every write back
(checker.py) and measures RTO. The skeleton is written once (harness.py); a drill module
holds one `Drill` subclass: its fault and what it watches.

The names are declared once, in `datakit.choices` (the CLI reads them there without
loading pydantic); `topology.baselines.DRILLS` keys the RTO baselines by them, the registry
here is built from that list, a module per name (`-` becomes `_`), and the runner and the
benches take their choices from it.
"""

from __future__ import annotations

import importlib
import importlib.util

from datakit.drills.harness import Drill
from datakit.errors import DatakitError
from datakit.topology.baselines import DRILLS

MODULES = {name: f"datakit.drills.{name.replace('-', '_')}" for name in DRILLS}
_missing = [m for m in MODULES.values() if importlib.util.find_spec(m) is None]
assert not _missing, f"drills named in topology.baselines.DRILLS without a module: {_missing}"


def drill_class(name: str) -> type[Drill]:
    """The `Drill` subclass of drill `name`: the one its module defines."""
    if name not in MODULES:
        raise DatakitError(f"no drill {name!r}: choose one of {', '.join(DRILLS)}")
    module = importlib.import_module(MODULES[name])
    found = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Drill)
             and v.__module__ == module.__name__]
    assert len(found) == 1, f"{module.__name__} must define one Drill subclass, has {found}"
    return found[0]
