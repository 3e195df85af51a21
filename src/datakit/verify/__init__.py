"""`datakit verify`: prove every node of a stack with the testinfra suite in tests/infra/.

>>> from datakit.verify import run
>>> result = run("local", timeout=30)
>>> result.ok, [r.check for r in result.failed]

`runner` builds the pytest run from the stack's outputs, `expect` is the one readiness
helper every check uses (retry until ready or the deadline, record expected/found/waited),
`results` is the pytest plugin that collects those records, `report` prints and writes them.
"""

from datakit.verify.expect import Checker, Mismatch
from datakit.verify.results import Row
from datakit.verify.runner import SUITE_DIR, VerifyResult, run

__all__ = ["SUITE_DIR", "Checker", "Mismatch", "Row", "VerifyResult", "run"]
