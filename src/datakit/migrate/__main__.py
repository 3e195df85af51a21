"""`python -m datakit.migrate ...`, the same commands as `datakit migrate`."""

import sys

from datakit.migrate.fastpath import main_apply

code = main_apply(sys.argv[1:])  # apply without Typer's start-up cost
if code is None:
    from datakit.migrate.cli import main

    main()
else:
    sys.exit(code)
