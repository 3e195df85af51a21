"""The verify results on screen: one Rich table (check, node, expected, found, verdict,
waited_s) and a summary line. JSON and JUnit files are written by the runner. What the
checks and the suite say is escaped: a `[` or `:name:` in it prints as it is."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datakit.verify.runner import VerifyResult

STYLE = {"pass": "[green]PASS[/]", "warn": "[yellow]WARN[/]", "fail": "[red]FAIL[/]",
         "skip": "[dim]skip[/]"}


def table(result: VerifyResult, *, show_skipped: bool = False) -> Table:
    out = Table("check", "node", "expected", "found", "verdict", "waited_s",
                title=f"stack {escape(result.stack)}: verify")
    for r in result.rows:
        if r.verdict == "skip" and not show_skipped:
            continue
        out.add_row(escape(r.check), escape(r.node), escape(r.expected), escape(r.found),
                    STYLE.get(r.verdict, escape(r.verdict)), f"{r.waited_s:.2f}")
    return out


def summary(result: VerifyResult) -> str:
    counts = result.counts()
    parts = [f"{counts.get(v, 0)} {v}" for v in ("pass", "warn", "fail", "skip")
             if counts.get(v)]
    verdict = "[green]verified[/]" if result.ok else "[red]NOT verified[/]"
    return (f"stack {escape(result.stack)}: {verdict}: {', '.join(parts)} in "
            f"{result.wall_s:.1f}s")


def show(result: VerifyResult, console: Console) -> None:
    console.print(table(result))
    for problem in result.problems:
        console.print(f"[red]suite error:[/] {escape(problem)}", highlight=False)
    console.print(summary(result), highlight=False)
