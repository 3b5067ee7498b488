"""Self-contained HTML pages: inline CSS, plots inlined as PNG data URIs, tables sortable
by clicking a header (a few lines of inline JavaScript; without it the page still reads).
Nothing is fetched from elsewhere, so a page can be mailed, archived or opened offline.

The toolkit of the pages (``html_report``: ``harness report --format html`` and the report
written after a run; ``html_leaderboard``: ``harness leaderboard --format html``); it
imports no other module of the report.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa;
        --best: #fff8c5; --good: #dafbe1; --bad: #ffebe9; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; padding: 2rem 2.5rem 4rem; color: var(--ink); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 1.5rem; padding-bottom: .6rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 .6rem; border-bottom: 1px solid var(--line);
     padding-bottom: .25rem; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
p, li { max-width: 70rem; }
.muted, caption, .note { color: var(--muted); }
.scroll { overflow-x: auto; margin: .4rem 0 1rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 14px; }
caption { caption-side: top; text-align: left; padding: 0 0 .35rem; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: .3rem .6rem; white-space: nowrap; }
th { background: var(--head); font-weight: 600; text-align: center; }
th.sortable { cursor: pointer; user-select: none; }
th.sortable::after { content: " \\2195"; color: #8c959f; font-size: 11px; }
th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--accent); }
th[aria-sort="descending"]::after { content: " \\2193"; color: var(--accent); }
td { text-align: right; }
td.label { text-align: left; font-weight: 600; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.best { background: var(--best) !important; font-weight: 700; }
td.better { background: var(--good) !important; }
td.worse { background: var(--bad) !important; }
td.missing { color: var(--muted); text-align: center; }
figure { margin: .6rem 0 1.4rem; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
code { background: var(--head); padding: .05rem .3rem; border-radius: 3px; font-size: 13px; }
ul.notes { color: var(--muted); font-size: 13px; padding-left: 1.2rem; }
td.text { text-align: left; white-space: normal; max-width: 60rem; word-break: break-word; }
pre { background: var(--head); border: 1px solid var(--line); border-radius: 4px;
      padding: .6rem .8rem; font-size: 13px; overflow-x: auto; max-width: 70rem; }
summary { cursor: pointer; color: var(--accent); margin: .4rem 0; }
a { color: var(--accent); }
"""

# Click a header to sort its table by that column (numbers by value, then text).
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.classList.add("sortable");
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      function key(row) {
        var text = row.cells[col].textContent.trim();
        var m = text.match(/^[+-]?\\d+(\\.\\d+)?/);
        return m ? [0, parseFloat(m[0]), text] : [1, 0, text];
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x[0] !== y[0]) return x[0] - y[0];
        var d = x[0] === 0 ? x[1] - y[1] : x[2].localeCompare(y[2]);
        return asc ? d : -d;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


@dataclass(frozen=True)
class Td:
    """A table cell: its text and CSS classes (best, better, worse, missing, label)."""

    text: str
    cls: str = ""


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def table(header: Sequence[str], rows: Sequence[Sequence[Td | str]], caption: str = "",
          sortable: bool = True, label: int = 0) -> str:
    """A table; str cells are plain; column ``label`` holds the row labels."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            td = cell if isinstance(cell, Td) else Td(str(cell))
            cls = " ".join(c for c in (td.cls, "label" if i == label else "") if c)
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{esc(td.text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    cls = ' class="sortable"' if sortable else ""
    return (f'<div class="scroll"><table{cls}>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>\n")


def image(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">{cap}</figure>\n'


def notes(items: Sequence[str]) -> str:
    if not items:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in items) + "</ul>\n"


def page(title: str, body: str, subtitle: str = "") -> str:
    """A whole HTML document around ``body`` (already HTML)."""
    from harness.version import version

    sub = f'<div class="muted">{esc(subtitle)}</div>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{esc(title)}</h1>{sub}</header>\n<main>\n{body}</main>\n"
        f'<footer class="muted"><p>Generated by harness {esc(version())}.</p></footer>\n'
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
