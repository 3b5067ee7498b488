"""Text from specs and records (labels, spec names, notes, ``--machine``) made safe for
the formats reports write: a Markdown table cell that stays one cell and shows raw HTML
as text, and a CSV field that a spreadsheet never runs as a formula."""

from __future__ import annotations

import re
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def md_text(text: str) -> str:
    """``text`` for Markdown: one line (whitespace runs, newlines included, become one
    space), ``|`` escaped (a table cell stays one cell), ``&``, ``<`` and ``>`` as
    entities (raw HTML is shown, never rendered)."""
    line = " ".join(str(text).split())
    return (line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|"))


def csv_text(value: Any) -> Any:
    """A CSV field: text starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage
    return) gets a leading ``'``, so spreadsheets show it instead of evaluating it (the
    OWASP rule); numbers and other text are unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def md_code(text: str) -> str:
    """``text`` as a Markdown code span that no backtick inside it can end (CommonMark: a
    span fenced by more backticks than its longest run), on one line; inside a code span
    HTML is shown as text."""
    line = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{fence}{pad}{line}{pad}{fence}"
