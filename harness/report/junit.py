"""JUnit XML for CI: one testsuite per check (a reported file, or the regression check
against an earlier run), one testcase per check row.

A row that counts as a failure is a ``<failure>`` with the numbers; a row not run is
``<skipped>`` (a ``<failure>`` with --require-all); an informational failure passes (it
never fails the check) and says so in ``<system-out>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    classname: str
    name: str
    outcome: str  # "pass", "fail", "skip"
    message: str = ""
    text: str = ""
    out: str = ""


@dataclass(frozen=True)
class Suite:
    name: str
    cases: Sequence[Case]


def check_cases(rows: Sequence, suite: str) -> list[Case]:
    """Cases of harness.report.check rows."""
    cases = []
    for r in rows:
        metric = f" [{r.metric}]" if r.metric else ""
        name = f"{r.rule} {r.labels} N={r.size_text}{metric}"
        text = f"expected {r.expected}; measured {r.measured}; {r.closeness}"
        if r.counts_as_failure:
            cases.append(Case(f"{suite}.{r.rule}", name, "fail", r.closeness, text))
        elif r.not_run:
            cases.append(Case(f"{suite}.{r.rule}", name, "skip", r.closeness))
        else:
            out = f"{r.verdict}: {text}" if not r.passed else text
            cases.append(Case(f"{suite}.{r.rule}", name, "pass", out=out))
    return cases


def to_junit(suites: Sequence[Suite]) -> str:
    root = ET.Element("testsuites")
    total = {"tests": 0, "failures": 0, "skipped": 0}
    for suite in suites:
        counts = {"tests": len(suite.cases),
                  "failures": sum(c.outcome == "fail" for c in suite.cases),
                  "skipped": sum(c.outcome == "skip" for c in suite.cases)}
        element = ET.SubElement(root, "testsuite", name=suite.name, errors="0",
                                **{k: str(v) for k, v in counts.items()})
        for key in total:
            total[key] += counts[key]
        for case in suite.cases:
            tc = ET.SubElement(element, "testcase", classname=case.classname, name=case.name)
            if case.outcome == "fail":
                ET.SubElement(tc, "failure", message=case.message).text = case.text
            elif case.outcome == "skip":
                ET.SubElement(tc, "skipped", message=case.message)
            if case.out:
                ET.SubElement(tc, "system-out").text = case.out
    root.attrib.update({k: str(v) for k, v in total.items()})
    root.attrib["errors"] = "0"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"
