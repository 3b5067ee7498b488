"""One entry point per output format: ``render`` (a result set's tables as md, csv, latex
or a whole HTML page) and ``render_board`` (a leaderboard as md, csv, json or html).
It sits above the table, leaderboard and HTML modules so that none of them imports
another to dispatch."""

from __future__ import annotations

from harness.report.leaderboard import Board
from harness.report.leaderboard import render as board_text
from harness.report.load import ResultSet
from harness.report.table import build_table, to_csv, to_latex, to_markdown

FORMATS = ("md", "csv", "latex", "html")
BOARD_FORMATS = ("md", "csv", "json", "html")


def render(rs: ResultSet, metrics: list[str], fmt: str) -> str:
    """The tables of ``metrics`` in ``fmt`` as one string; html is a whole self-contained
    page (harness.report.html_report) with every metric's figure and the provenance."""
    if fmt == "csv":
        return to_csv(rs, metrics)
    if fmt == "html":
        from harness.report.html_report import report_page

        return report_page(rs, metrics)
    renderer = {"md": to_markdown, "latex": to_latex}.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return "\n".join(renderer(build_table(rs, m)) for m in metrics)


def render_board(board: Board, fmt: str) -> str:
    """The leaderboard in ``fmt`` (one of BOARD_FORMATS)."""
    if fmt == "html":
        from harness.report.html_leaderboard import leaderboard_page

        return leaderboard_page(board)
    return board_text(board, fmt)
