"""Entry point of the delay process: `python -m datakit.nodes.faults.delay_process`.

Apart from delayer.py so that running it does not import, through the package, the very
module it runs (Python warns, and would hold two copies of it).
"""

import sys

from datakit.nodes.faults.delayer import main

sys.exit(main())
