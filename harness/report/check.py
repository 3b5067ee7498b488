"""Compare pooled results with numbers a paper reports (``reported/*.yaml``, plain data).

Rules: ``band`` (our statistic inside the paper's 10-90 percentile band around its
value), ``tolerance`` (within ``tol`` of the value) and ``ordering`` (one method at least
as good as another, direction-aware). Each yields check rows with a signed ``margin``:
positive means passing with that much room, negative says by how much it misses.
Rules marked ``required: false`` are shown but never fail the check. A rule may name its
own ``metric`` (else the file's), so one file can hold a table's several columns; with
``only_if_run: true`` a rule's sizes that the results do not have at all (another scale's
spec) are "not run": left out of the table and counted apart, never failing the check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from harness.report.load import Pooled, ReportError, ResultSet

Statistic = Literal["median", "mean", "p10", "p90"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stat: Statistic | None = Field(None, description="default: the file's statistic")
    required: bool = Field(True, description="false: shown, but a failure does not count")
    metric: str | None = Field(None, description="default: the file's metric")
    only_if_run: bool = Field(
        False, description="true: a size absent from the results is not run, not a failure"
    )
    note: str = ""


class BandRule(_Rule):
    rule: Literal["band"]
    label: str
    size: PositiveInt
    value: float
    plus: NonNegativeFloat = Field(description="upper edge is value + plus")
    minus: NonNegativeFloat = Field(description="lower edge is value - minus")


class ToleranceRule(_Rule):
    rule: Literal["tolerance"]
    label: str
    size: PositiveInt
    value: float
    tol: NonNegativeFloat


class OrderingRule(_Rule):
    rule: Literal["ordering"]
    better: str
    worse: str
    sizes: list[PositiveInt] = Field(min_length=1)
    margin: float = Field(0.0, description="better must beat worse by at least this much")


Rule = Annotated[BandRule | ToleranceRule | OrderingRule, Field(discriminator="rule")]


class Reported(BaseModel):
    """A reported file: where the numbers come from, their units, and the rules."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="citation: paper, table or figure")
    task: str
    metric: str
    scale: PositiveFloat = Field(1.0, description="reported = scale x ours (100 for percent)")
    statistic: Statistic = "median"
    description: str = ""
    rules: list[Rule] = Field(min_length=1)


@dataclass(frozen=True)
class CheckRow:
    rule: str
    labels: str
    size: int
    expected: str
    measured: str
    closeness: str
    passed: bool
    required: bool
    margin: float | None = None
    metric: str = ""
    not_run: bool = False  # only_if_run and the results lack the size: does not count

    @property
    def verdict(self) -> str:
        if self.not_run:
            return "not run"
        if self.passed:
            return "PASS"
        return "FAIL" if self.required else "FAIL (info)"


def load_reported(path: str | Path) -> Reported:
    """Read and validate a reported file; problems become one ReportError line."""
    from harness.yamlio import YamlFileError, read_yaml_file

    path = Path(path)
    try:
        data = read_yaml_file(path, "reported file")
        return Reported.model_validate(data)
    except YamlFileError as exc:
        raise ReportError(str(exc)) from None
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ReportError(f"{path}: {'; '.join(problems)}") from None


def run_checks(rs: ResultSet, reported: Reported) -> list[CheckRow]:
    """Evaluate every rule of ``reported`` against the pooled results."""
    if reported.task != rs.task:
        raise ReportError(
            f"reported numbers are for task '{reported.task}', results are for '{rs.task}'"
        )
    cache: dict[str, dict[tuple[str, int], Pooled]] = {}
    rows: list[CheckRow] = []
    for rule in reported.rules:
        metric = rule.metric or reported.metric
        if metric not in cache:
            cache[metric] = rs.pooled(rs.check_metric(metric))
        pooled, higher = cache[metric], rs.better_high(metric)
        stat = rule.stat or reported.statistic
        sizes = rule.sizes if isinstance(rule, OrderingRule) else [rule.size]
        for size in sizes:
            if rule.only_if_run and size not in rs.sizes:
                row = _not_run(rule, size)
            elif isinstance(rule, OrderingRule):
                row = _ordering(rule, size, pooled, stat, reported.scale, higher)
            else:
                row = _against_value(rule, pooled, stat, reported.scale)
            rows.append(replace(row, metric=metric))
    return rows


def _not_run(rule: BandRule | ToleranceRule | OrderingRule, size: int) -> CheckRow:
    labels = f"{rule.better} vs {rule.worse}" if isinstance(rule, OrderingRule) else rule.label
    return CheckRow(rule=rule.rule, labels=labels, size=size, expected="—", measured="—",
                    closeness="not run (the results have no such size)", passed=False,
                    required=False, not_run=True)


def _measure(pooled: dict[tuple[str, int], Pooled], label: str, size: int, stat: str,
             scale: float) -> float | str:
    """Our scaled statistic, or why there is none ("no results ...")."""
    cell = pooled.get((label, size))
    if cell is None or cell.status == "missing":
        return "no results"
    if cell.status != "ok":
        return f"no results ({cell.status})"
    return scale * cell.stat(stat)


def _against_value(rule: BandRule | ToleranceRule, pooled: dict[tuple[str, int], Pooled],
                   stat: str, scale: float) -> CheckRow:
    if isinstance(rule, BandRule):
        lo, hi = rule.value - rule.minus, rule.value + rule.plus
        expected = f"{_num(rule.value)} [{_num(lo)}, {_num(hi)}]"
    else:
        lo, hi = rule.value - rule.tol, rule.value + rule.tol
        expected = f"{_num(rule.value)} ± {_num(rule.tol)}"
    measured = _measure(pooled, rule.label, rule.size, stat, scale)
    base = dict(rule=rule.rule, labels=rule.label, size=rule.size, expected=expected,
                required=rule.required)
    if isinstance(measured, str):
        return CheckRow(**base, measured="—", closeness=measured, passed=False)
    margin = min(measured - lo, hi - measured)
    offset = f"{measured - rule.value:+.2f} from reported"
    if margin >= 0:
        closeness = f"inside by {_num(margin)}; {offset}"
    else:
        side = "above" if measured > hi else "below"
        closeness = f"misses by {_num(-margin)} ({side}); {offset}"
    return CheckRow(**base, measured=f"{stat} {_num(measured)}", closeness=closeness,
                    passed=margin >= 0, margin=margin)


def _ordering(rule: OrderingRule, size: int, pooled: dict[tuple[str, int], Pooled], stat: str,
              scale: float, higher: bool) -> CheckRow:
    sign = ">=" if higher else "<="
    plus = f" {'+' if higher else '-'} {_num(rule.margin)}" if rule.margin else ""
    base = dict(rule="ordering", labels=f"{rule.better} vs {rule.worse}", size=size,
                expected=f"{rule.better} {sign} {rule.worse}{plus}", required=rule.required)
    better = _measure(pooled, rule.better, size, stat, scale)
    worse = _measure(pooled, rule.worse, size, stat, scale)
    for label, value in ((rule.better, better), (rule.worse, worse)):
        if isinstance(value, str):
            return CheckRow(**base, measured="—", closeness=f"{label}: {value}", passed=False)
    gap = (better - worse) if higher else (worse - better)  # type: ignore[operator]
    margin = gap - rule.margin
    return CheckRow(**base, measured=f"{stat} {_num(better)} vs {_num(worse)}",
                    closeness=f"gap {'+' if gap >= 0 else '-'}{_num(abs(gap))}",
                    passed=margin >= 0, margin=margin)


def _num(value: float) -> str:
    """Two decimals (the paper's precision for percent), significant digits for tiny values."""
    return f"{value:.2f}" if abs(value) >= 0.095 or value == 0 else f"{value:.3g}"


def summarize(rows: list[CheckRow]) -> str:
    """'N passed, M failed', plus the informational failures and the rows not run (neither
    counts)."""
    passed = sum(r.passed for r in rows)
    failed = sum(not r.passed and r.required for r in rows)
    info = sum(not r.passed and not r.required and not r.not_run for r in rows)
    not_run = sum(r.not_run for r in rows)
    extra = [f"{info} informational failed, not counted"] if info else []
    if not_run:
        extra.append(f"{not_run} not run: sizes these results do not have")
    return f"{passed} passed, {failed} failed" + (f" ({'; '.join(extra)})" if extra else "")


def failed(rows: list[CheckRow]) -> bool:
    return any(not r.passed and r.required for r in rows)


def print_checks(rows: list[CheckRow], title: str) -> None:
    """A rich table of the check rows followed by the summary line."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    shown = [r for r in rows if not r.not_run]
    metrics = len({r.metric for r in rows}) > 1  # a metric column only when there are several
    columns = ("rule", "method(s)", *(("metric",) if metrics else ()), "N", "expected",
               "measured", "how close", "result")
    for column in columns:
        table.add_column(column, justify="right" if column == "N" else "left", no_wrap=True)
    style = {"PASS": "green", "FAIL": "bold red", "FAIL (info)": "yellow"}
    for r in shown:
        cells = (r.rule, r.labels, *((r.metric,) if metrics else ()), str(r.size), r.expected,
                 r.measured, r.closeness)
        table.add_row(*(Text(c) for c in cells), Text(r.verdict, style=style[r.verdict]))
    console = Console(width=max(160, Console().width))
    console.print(table)
    console.print(summarize(rows))
