"""`python -m datakit.cli ...`, as the `datakit` command without its lean `migrate apply`."""

from datakit.cli import main

main()
