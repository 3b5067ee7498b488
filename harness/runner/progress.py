"""The sweep's progress bar (cells done / total with ETA) and its one-line cell log.

Rich draws a live bar on a terminal; elsewhere (CI, pipes) it draws nothing live and the
one line printed per finished cell is the progress report.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow"}


class SweepProgress:
    """Context manager: ``fraction`` (an in-process cell's callback), ``running`` (cells in
    workers), ``finish``."""

    def __init__(self, total: int, done: int = 0, metric: str | None = None,
                 console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.metric = metric
        self.total = total
        self.done = done
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            disable=not self.console.is_terminal,
        )
        self._task = self._bar.add_task("cells", total=max(total, 1), completed=done)

    def __enter__(self) -> SweepProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.stop()

    def describe(self, text: str) -> None:
        self._bar.update(self._task, description=text)

    def fraction(self, value: float) -> None:
        """Progress inside the current cell, in [0, 1] (in-process runs only)."""
        self._bar.update(self._task, completed=self.done + min(max(value, 0.0), 1.0))

    def running(self, fractions: list[float]) -> None:
        """Progress inside the cells running in worker processes."""
        if fractions:
            extra = sum(min(max(f, 0.0), 1.0) for f in fractions)
            self._bar.update(self._task, completed=self.done + extra)

    def finish(self, record: dict[str, Any], note: str = "") -> None:
        self.done += 1
        self._bar.update(self._task, completed=self.done)
        self.log(record, note)

    def log(self, record: dict[str, Any], note: str = "") -> None:
        status = record["status"]
        unit = f" ({record['unit']})" if record.get("unit") else ""
        where = f"{record['label']}{unit} size={record['size']} seed={record['seed']}"
        detail = record.get("reason") or ""
        summary = record.get("summary") or {}
        if status == "ok" and summary:
            metric = self.metric if self.metric in summary else next(iter(summary))
            detail = f"{metric} mean {summary[metric]['mean']:.4g}"
        seconds = record.get("timings", {}).get("train_s", 0.0)
        extra = f"  {note}" if note else ""
        self.console.print(
            f"[{STYLE.get(status, 'default')}]{status:<7}[/] {escape(where)}  {escape(detail)}  "
            f"({seconds:.1f}s){escape(extra)}  {escape(f'[{self.done}/{self.total}]')}",
            highlight=False, soft_wrap=True,
        )

    def message(self, text: str) -> None:
        self.console.print(escape(text), highlight=False, soft_wrap=True)
