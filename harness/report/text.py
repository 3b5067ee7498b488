"""Plain-text tables that fit a terminal width (100 columns by default): columns as wide
as their content, the widest wrappable ones narrowed (their cells wrapped onto more
lines) until the table fits. No colour and no box drawing, so logs and CI output read
the same as a terminal."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

GAP = "  "
DETAIL = "    "


def fit_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int = 100,
              right: Sequence[int] = (), nowrap: Sequence[int] = (),
              details: Sequence[str] | None = None) -> str:
    """``header`` and ``rows`` as aligned text lines no wider than ``width`` (when the
    columns in ``nowrap`` allow it). ``right``: column indices to right-align.
    ``details``: one text per row, wrapped on indented lines below it."""
    n = len(header)
    widths = [max([len(header[i]), *(len(r[i]) for r in rows)]) for i in range(n)]
    floor = [len(header[i]) if i in nowrap else max(8, min(widths[i], len(header[i])))
             for i in range(n)]
    for i in nowrap:
        floor[i] = widths[i]

    def total() -> int:
        return sum(widths) + len(GAP) * (n - 1)

    while total() > width:
        candidates = [i for i in range(n) if widths[i] > floor[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1

    def lines_of(cells: Sequence[str]) -> list[str]:
        wrapped = [textwrap.wrap(c, widths[i], break_long_words=True,
                                 break_on_hyphens=False) or [""]
                   for i, c in enumerate(cells)]
        height = max(len(w) for w in wrapped)
        out = []
        for k in range(height):
            parts = []
            for i, w in enumerate(wrapped):
                text = w[k] if k < len(w) else ""
                parts.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
            out.append(GAP.join(parts).rstrip())
        return out

    lines = lines_of(header)
    lines.append(GAP.join("-" * w for w in widths))
    for k, row in enumerate(rows):
        lines += lines_of(row)
        if details is not None and details[k]:
            lines += textwrap.wrap(details[k], width, initial_indent=DETAIL,
                                   subsequent_indent=DETAIL, break_on_hyphens=False)
    return "\n".join(lines) + "\n"


def wrap(text: str, width: int = 100) -> str:
    """A paragraph (or line) wrapped to ``width``, continuation lines indented."""
    return "\n".join(textwrap.wrap(text, width, subsequent_indent=DETAIL,
                                    break_on_hyphens=False, break_long_words=True)) + "\n"
