"""Where every `datakit` command prints: results on stdout, progress and errors on stderr.

Text from stack files and servers is printed as it is. Both consoles turn emoji codes off (a
config line with ":key:" in it became a key glyph). Markup stays on for the commands' own
colours, so such text is escaped (rich.markup.escape) wherever markup is read: in a table
cell or title, a status line, or a `print` that also carries markup. A line with no markup
of its own is printed with `markup=False` (cli_options.fail prints plain text).
"""

from __future__ import annotations

from rich.console import Console

console = Console(emoji=False)
err = Console(stderr=True, emoji=False)
