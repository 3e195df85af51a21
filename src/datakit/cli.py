"""The `datakit` command: a thin face over the library; every command is a library call."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from datakit.errors import DatakitError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Deploy and test a PostgreSQL, Redis and Kafka data layer as code.")
console = Console()
err = Console(stderr=True)


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="print JSON for machines")) -> None:
    """Check every tool datakit needs: version, where it came from, and the fix."""
    from datakit.toolchain import doctor as checks

    found = checks.checks()
    if as_json:
        print(json.dumps(checks.as_json(found), indent=2))
    else:
        table = Table("tool", "status", "version", "from", "fix")
        for c in found:
            table.add_row(c.name, "[green]OK[/]" if c.ok else "[red]MISSING[/]", c.version,
                          c.source, c.fix)
        console.print(table)
    if not all(c.ok for c in found):
        raise typer.Exit(1)


@app.callback()
def _group() -> None:
    """Deploy and test a PostgreSQL, Redis and Kafka data layer as code."""


def main() -> None:
    """Entry point: expected failures print one line and exit non-zero, no traceback."""
    try:
        app()
    except DatakitError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
