"""What a drill is given: the stack's outputs (the typed model), a run id, and how to run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datakit.stack.schema import StackOutputs


@dataclass
class DrillContext:
    stack: str
    outputs: StackOutputs
    durable: bool = True  # False: the deliberately non-durable mode (checker's own test)
    warmup_s: float = 1.0  # writes before the fault
    tail_s: float = 0.5  # writes after full redundancy
    work_dir: Path = Path("/var/lib/datakit/drills")
    say: Callable[[str], None] = lambda _msg: None
    run_id: str = field(default_factory=lambda: f"{time.strftime('%H%M%S')}-"
                                                f"{uuid.uuid4().hex[:6]}")

