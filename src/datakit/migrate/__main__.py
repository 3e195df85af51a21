"""`python -m datakit.migrate ...`, the same commands as `datakit migrate`."""

from datakit.migrate.cli import main

main()
