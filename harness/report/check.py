"""Compare pooled results with numbers a paper reports (``reported/*.yaml``, plain data).

Rules: ``band`` (our statistic inside the paper's 10-90 percentile band around its
value), ``tolerance`` (within ``tol`` of the value), ``ordering`` (one method at least
as good as another, direction-aware; with ``confidence: 0.95`` only when the paired
bootstrap interval of better minus worse lies on the right side of zero) and
``data_gain`` (a method's data-equivalent gain over a reference, in percent extra data,
within ``tol`` of the value). Each yields check rows with a signed ``margin``: positive
means passing with that much room, negative says by how much it misses.

Rules marked ``required: false`` are shown but never fail the check. A rule may name its
own ``metric`` (else the file's), so one file can hold a table's several columns.

Not run: a row whose size the results do not have, or whose cell is in the grid but has
no record yet, is "not run": distinct from a failure, counted apart, and failing only with
``require_all`` (``harness check --require-all``). With ``only_if_run: true`` a rule's
absent sizes belong to another scale's spec: they are left out of the text table and
never fail, even with ``require_all``. A label the results do not have at all fails (a
typo must not pass as "not run"), and so does a cell that failed or was skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

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
TEXT_WIDTH = 100


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stat: Statistic | None = Field(None, description="default: the file's statistic")
    required: bool = Field(True, description="false: shown, but a failure does not count")
    metric: str | None = Field(None, description="default: the file's metric")
    only_if_run: bool = Field(
        False, description="true: a size absent from the results is another scale's: not "
        "shown and never a failure, even with --require-all"
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
    confidence: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="e.g. 0.95: pass only when the paired bootstrap interval of better minus "
        "worse (direction-aware) lies above the margin",
    )


class DataGainRule(_Rule):
    rule: Literal["data_gain"]
    label: str
    reference: str = "baseline"
    sizes: list[PositiveInt] | None = Field(
        None, description="the sizes to average over (default: every size of the results)"
    )
    value: float = Field(description="percent extra data the reference needs, on average")
    tol: NonNegativeFloat


Rule = Annotated[BandRule | ToleranceRule | OrderingRule | DataGainRule,
                 Field(discriminator="rule")]
AnyRule = BandRule | ToleranceRule | OrderingRule | DataGainRule


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
    size: int | None  # None: the rule covers several sizes (data_gain)
    expected: str
    measured: str
    closeness: str
    passed: bool
    required: bool
    margin: float | None = None
    metric: str = ""
    not_run: bool = False  # the results lack this size or cell: counted apart
    other_scale: bool = False  # not run, and only_if_run: never fails, not shown as text
    must_run: bool = False  # --require-all: a row not run fails
    details: dict[str, Any] = field(default_factory=dict)  # interval, per-size gains

    @property
    def verdict(self) -> str:
        if self.not_run:
            return "FAIL (not run)" if self.counts_as_failure else "not run"
        if self.passed:
            return "PASS"
        return "FAIL" if self.required else "FAIL (info)"

    @property
    def counts_as_failure(self) -> bool:
        if self.not_run:
            return self.must_run and not self.other_scale
        return not self.passed and self.required

    @property
    def size_text(self) -> str:
        return "all" if self.size is None else str(self.size)


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


class _Metric:
    """One metric's pooled cells and (lazily) its replicate values, for every rule."""

    def __init__(self, rs: ResultSet, metric: str) -> None:
        self.rs, self.metric = rs, rs.check_metric(metric)
        self.pooled = rs.pooled(metric)
        self.higher = rs.better_high(metric)
        self._replicates: dict | None = None

    @property
    def replicates(self) -> dict:
        if self._replicates is None:
            self._replicates = self.rs.replicates(self.metric)
        return self._replicates


def run_checks(rs: ResultSet, reported: Reported, require_all: bool = False) -> list[CheckRow]:
    """Evaluate every rule of ``reported`` against the pooled results; ``require_all``:
    rows not run fail (except only_if_run sizes of another scale)."""
    if reported.task != rs.task:
        raise ReportError(
            f"reported numbers are for task '{reported.task}', results are for '{rs.task}'"
        )
    cache: dict[str, _Metric] = {}
    rows: list[CheckRow] = []
    for rule in reported.rules:
        metric = rule.metric or reported.metric
        if metric not in cache:
            cache[metric] = _Metric(rs, metric)
        m = cache[metric]
        stat = rule.stat or reported.statistic
        if isinstance(rule, DataGainRule):
            new = [_data_gain(rule, rs, m, stat)]
        else:
            sizes = rule.sizes if isinstance(rule, OrderingRule) else [rule.size]
            new = []
            for size in sizes:
                if size not in rs.sizes:
                    new.append(_not_run(rule, size, "the results have no such size"))
                elif isinstance(rule, OrderingRule):
                    new.append(_ordering(rule, size, m, stat, reported.scale))
                else:
                    new.append(_against_value(rule, m, stat, reported.scale))
        rows += [replace(r, metric=metric, must_run=require_all) for r in new]
    return rows


def _rule_labels(rule: AnyRule) -> str:
    if isinstance(rule, OrderingRule):
        return f"{rule.better} vs {rule.worse}"
    if isinstance(rule, DataGainRule):
        return f"{rule.label} vs {rule.reference}"
    return rule.label


def _not_run(rule: AnyRule, size: int | None, why: str) -> CheckRow:
    return CheckRow(rule=rule.rule, labels=_rule_labels(rule), size=size, expected="—",
                    measured="—", closeness=f"not run ({why})", passed=False,
                    required=rule.required, not_run=True,
                    other_scale=rule.only_if_run and why.startswith("the results have no"))


class _Missing(Exception):
    """A cell without a value: ``not_run`` (no record yet) or a failure (why)."""

    def __init__(self, why: str, not_run: bool) -> None:
        super().__init__(why)
        self.why, self.not_run = why, not_run


def _cell(m: _Metric, label: str, size: int) -> Pooled:
    if label not in m.rs.labels:
        raise _Missing(f"no method labelled '{label}' in the results", not_run=False)
    cell = m.pooled.get((label, size))
    if cell is None or cell.status == "missing":
        raise _Missing(f"{label}: not run yet (no record of this cell)", not_run=True)
    if cell.status != "ok":
        raise _Missing(f"{label}: no results ({cell.status})", not_run=False)
    return cell


def _against_value(rule: BandRule | ToleranceRule, m: _Metric, stat: str,
                   scale: float) -> CheckRow:
    if isinstance(rule, BandRule):
        lo, hi = rule.value - rule.minus, rule.value + rule.plus
        expected = f"{_num(rule.value)} [{_num(lo)}, {_num(hi)}]"
    else:
        lo, hi = rule.value - rule.tol, rule.value + rule.tol
        expected = f"{_num(rule.value)} ± {_num(rule.tol)}"
    base = dict(rule=rule.rule, labels=rule.label, size=rule.size, expected=expected,
                required=rule.required)
    try:
        measured = scale * _cell(m, rule.label, rule.size).stat(stat)
    except _Missing as exc:
        if exc.not_run:
            return _not_run(rule, rule.size, "no record of this cell yet")
        return CheckRow(**base, measured="—", closeness=exc.why, passed=False)
    margin, closeness = _inside(measured, rule.value, lo, hi)
    return CheckRow(**base, measured=f"{stat} {_num(measured)}", closeness=closeness,
                    passed=margin >= 0, margin=margin)


def _inside(measured: float, value: float, lo: float, hi: float) -> tuple[float, str]:
    margin = min(measured - lo, hi - measured)
    offset = f"{measured - value:+.2f} from reported"
    if margin >= 0:
        return margin, f"inside by {_num(margin)}; {offset}"
    side = "above" if measured > hi else "below"
    return margin, f"misses by {_num(-margin)} ({side}); {offset}"


def _ordering(rule: OrderingRule, size: int, m: _Metric, stat: str, scale: float
              ) -> CheckRow:
    higher = m.higher
    sign = ">=" if higher else "<="
    plus = f" {'+' if higher else '-'} {_num(rule.margin)}" if rule.margin else ""
    conf = f" ({rule.confidence:.0%})" if rule.confidence else ""
    base = dict(rule="ordering", labels=f"{rule.better} vs {rule.worse}", size=size,
                expected=f"{rule.better} {sign} {rule.worse}{plus}{conf}",
                required=rule.required)
    try:
        better = scale * _cell(m, rule.better, size).stat(stat)
        worse = scale * _cell(m, rule.worse, size).stat(stat)
    except _Missing as exc:
        if exc.not_run:
            return _not_run(rule, size, "no record of a cell yet")
        return CheckRow(**base, measured="—", closeness=exc.why, passed=False)
    gap = (better - worse) if higher else (worse - better)
    measured = f"{stat} {_num(better)} vs {_num(worse)}"
    if rule.confidence is None:
        margin = gap - rule.margin
        return CheckRow(**base, measured=measured,
                        closeness=f"gap {'+' if gap >= 0 else '-'}{_num(abs(gap))}",
                        passed=margin >= 0, margin=margin)
    return _significant(rule, base, measured, m, size, stat, scale)


def _significant(rule: OrderingRule, base: dict[str, Any], measured: str, m: _Metric,
                 size: int, stat: str, scale: float) -> CheckRow:
    """The ordering with a paired bootstrap interval of (better - worse), oriented so that
    positive means better; passes when the interval's low end clears the margin."""
    from harness.report.stats import paired_difference

    if stat not in ("median", "mean"):
        return CheckRow(**base, measured=measured, passed=False,
                        closeness=f"confidence needs stat median or mean, not {stat}")
    values = m.replicates
    a, b = values.get((rule.better, size), {}), values.get((rule.worse, size), {})
    if not m.higher:
        a, b = b, a
    interval = paired_difference(a, b, m.rs.paired, stat, rule.confidence or 0.95)
    details = {"interval": interval.as_dict()}
    if not interval.has_interval:
        return CheckRow(**base, measured=measured, passed=False, details=details,
                        closeness=f"gap {interval.text(scale)}: cannot show a difference")
    margin = scale * interval.low - rule.margin  # type: ignore[operator]
    if margin >= 0:
        verdict = ""
    elif interval.high < 0:  # type: ignore[operator]
        verdict = ": the other way round (the interval lies below zero)"
    else:
        verdict = ": not significant"
    return CheckRow(**base, measured=measured, passed=margin >= 0, margin=margin,
                    details=details,
                    closeness=f"gap {interval.text(scale)} ({interval.method}){verdict}")


def _data_gain(rule: DataGainRule, rs: ResultSet, m: _Metric, stat: str) -> CheckRow:
    from harness.report.stats import data_equivalent_gain

    expected = f"{_num(rule.value)}% ± {_num(rule.tol)}"
    base = dict(rule="data_gain", labels=f"{rule.label} vs {rule.reference}", size=None,
                expected=expected, required=rule.required)
    for label in (rule.label, rule.reference):
        if label not in rs.labels:
            return CheckRow(**base, measured="—", passed=False,
                            closeness=f"no method labelled '{label}' in the results")
    sizes = [n for n in (rule.sizes or rs.sizes) if n in rs.sizes]
    if not sizes:
        return _not_run(rule, None, "the results have none of its sizes")

    def curve(label: str) -> dict[int, float]:
        cells = [m.pooled[(label, n)] for n in sizes]
        return {c.size: c.stat(stat) for c in cells if c.status == "ok"}

    ref, method = curve(rule.reference), curve(rule.label)
    absent = [n for n in sizes if n not in ref or n not in method]
    if len(ref) < 2 or not method:
        return CheckRow(**base, measured="—", passed=False,
                        closeness="needs the reference at two sizes and the method at one")
    gain = data_equivalent_gain(ref, method, m.higher)
    details = {"stat": stat, "points": [p.__dict__ for p in gain.points], "absent": absent}
    mean = gain.mean
    if mean is None:
        return CheckRow(**base, measured="undefined", passed=False, details=details,
                        closeness="the reference's curve never reaches the method's values")
    lo, hi = rule.value - rule.tol, rule.value + rule.tol
    margin, closeness = _inside(mean, rule.value, lo, hi)
    missing = f"; no values at {', '.join(map(str, absent))}" if absent else ""
    return CheckRow(**base, measured=f"{stat} {mean:+.1f}% ({len(gain.defined)} of "
                    f"{len(gain.points)} sizes)", closeness=closeness + missing,
                    passed=margin >= 0, margin=margin, details=details)


def _num(value: float) -> str:
    """Two decimals (the paper's precision for percent), significant digits for tiny values."""
    return f"{value:.2f}" if abs(value) >= 0.095 or value == 0 else f"{value:.3g}"


def summarize(rows: list[CheckRow]) -> str:
    """'N passed, M failed', plus the informational failures and the rows not run (neither
    counts, unless --require-all made the rows not run fail)."""
    passed = sum(r.passed for r in rows)
    failed_rows = sum(r.counts_as_failure for r in rows)
    info = sum(not r.passed and not r.required and not r.not_run for r in rows)
    extra = [f"{info} informational failed, not counted"] if info else []
    not_run = [r for r in rows if r.not_run]
    if not_run:
        scale = sum(r.other_scale for r in not_run)
        counted = sum(r.counts_as_failure for r in not_run)
        text = f"{len(not_run)} not run" + (f", {scale} of another scale" if scale else "")
        text += f": {counted} counted as failed (--require-all)" if counted else ": not counted"
        extra.append(text)
    return f"{passed} passed, {failed_rows} failed" + (f" ({'; '.join(extra)})" if extra
                                                      else "")


def failed(rows: list[CheckRow]) -> bool:
    return any(r.counts_as_failure for r in rows)


def checked(rows: list[CheckRow]) -> int:
    """How many rows were evaluated (not "not run")."""
    return sum(not r.not_run for r in rows)


def text_table(rows: list[CheckRow], title: str, width: int = TEXT_WIDTH) -> str:
    """The check rows as a table that fits ``width`` columns, each row's "how close" on
    the indented line(s) below it, then the summary line. Rows of another scale
    (only_if_run) are left out unless they fail (--require-all)."""
    from harness.report.text import fit_table, wrap

    shown = [r for r in rows if not r.other_scale or r.counts_as_failure]
    metrics = len({r.metric for r in rows}) > 1  # a metric column only when there are several
    header = ["rule", "method(s)", *(["metric"] if metrics else []), "N", "expected",
              "measured", "result"]
    body = [[r.rule, r.labels, *([r.metric] if metrics else []), r.size_text, r.expected,
             r.measured, r.verdict] for r in shown]
    n_col = header.index("N")
    table = fit_table(header, body, width, right=[n_col], nowrap=[0, n_col, len(header) - 1],
                      details=[r.closeness for r in shown])
    return wrap(title, width) + table + wrap(summarize(rows), width)


def print_checks(rows: list[CheckRow], title: str) -> None:
    """The text table of the check rows followed by the summary line, on stdout."""
    import sys

    sys.stdout.write(text_table(rows, title))


def rows_json(rows: list[CheckRow]) -> list[dict[str, Any]]:
    return [{"rule": r.rule, "labels": r.labels, "metric": r.metric, "size": r.size,
             "expected": r.expected, "measured": r.measured, "closeness": r.closeness,
             "verdict": r.verdict, "passed": r.passed, "required": r.required,
             "not_run": r.not_run, "other_scale": r.other_scale,
             "counts_as_failure": r.counts_as_failure, "margin": r.margin, **r.details}
            for r in rows]
