"""`python -m datakit.migrate ...`, the same commands as `datakit migrate`."""

import sys

from datakit.migrate.fastpath import try_noop_apply

if not try_noop_apply(sys.argv[1:]):
    from datakit.migrate.cli import main

    main()
