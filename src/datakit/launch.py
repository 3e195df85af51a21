"""The `datakit` command's entry point: `migrate apply` starts lean, the rest goes to Typer.

CI runs `datakit migrate apply` on every deploy, mostly with nothing to do. Importing the
Typer app (Typer, Rich, and what every command module loads) costs several times such a
run, so `migrate apply` is answered before any of that loads (`datakit.migrate.fastpath`);
every other command, `--help` and anything `apply` does not know go to `datakit.cli`.
"""

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:2] == ["migrate", "apply"]:
        # Imported here, not at the top: the other commands never need it.
        from datakit.migrate.fastpath import main_apply

        code = main_apply(argv[1:])
        if code is not None:
            sys.exit(code)
    from datakit.cli import main as cli_main  # Typer and Rich load only now

    cli_main()
