"""``harness leaderboard --format html``: the board, then each source's tables and plot,
as one self-contained page (harness.report.html)."""

from __future__ import annotations

from harness.report import leaderboard as lb
from harness.report.html import Td, esc, image, notes, page, table
from harness.report.plot import plot_png


def leaderboard_page(board) -> str:
    """``harness leaderboard --format html``: the board, each source's tables and plot."""
    parts = []
    header, rows = lb.summary_rows(board)
    parts.append("<h2>Board</h2>\n" + table(header, rows, f"{board.stat} of each source's "
                                           f"headline metric; reference {board.reference}",
                                           label=1))
    for s, src in enumerate(board.sources):
        parts.append(f"<h2>{esc(src.name)}</h2>\n")
        header, vrows = lb.value_rows(board, s)
        cells = [[Td(t, "best" if best else ("missing" if t in (lb.NOT_RUN, lb.ABSENT)
                                             else "")) for t, best in row] for row in vrows]
        parts.append(table(header, cells, lb.source_title(board, s)))
        header, drows = lb.diff_rows(board, s)
        if drows:
            styled = []
            for label, row in zip([x for x in lb.source_labels(board, s)
                                   if x != board.reference], drows, strict=True):
                out: list[Td | str] = [row[0]]
                for c, text in zip(board.columns_of(s), row[1:], strict=True):
                    e = board.entries[(label, c)]
                    side = e.diff.side(src.higher) if e.diff is not None else "n.s."
                    out.append(Td(text, {"better": "better", "worse": "worse"}.get(side, "")))
                styled.append(out)
            parts.append(table(header, styled, f"{lb.diff_title(board, s)} "
                                               f"({lb.pairs_note(board, s)})"))
        gains = lb.gain_rows(board, s)
        if gains is not None:
            parts.append(table(*gains, caption=lb.gain_title(board, s)))
        parts.append(image(plot_png(src.rs, src.metric), f"{src.name}: {src.metric}",
                           f"{src.name}: {src.metric}; line through the means, bars from "
                           "the 10th to the 90th percentile"))
        absent = lb.absent_note(board, s)
        parts.append(f'<p class="note">{esc(absent) + " " if absent else ""}Records: '
                     f'{esc(src.provenance.text())}.</p>\n')
    parts.append("<h2>How to read it</h2>\n" + notes(lb.legend(board)))
    names = ", ".join(src.name for src in board.sources)
    return page("Leaderboard", "".join(parts), f"sources: {names}")
