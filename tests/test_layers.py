"""The import graph of the package, read from the source (every import statement, also
those inside functions): the report is a library below the runner and the command line.

- no module under harness/report imports harness.cli, harness.runner, harness.tracking or
  harness.tuning (the runner calls the report, never the other way round);
- harness/cells (the grid, records and results folder both share) imports neither;
- no import cycle among the modules of harness/report, and none through it;
- the runner reaches the report in one place (harness.runner.command), one call.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
ABOVE_THE_REPORT = ("harness.cli", "harness.runner", "harness.tracking", "harness.tuning")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The harness modules ``path`` imports (``from a import b`` is a.b when a.b is a
    module, else a)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return {m for m in found if m.startswith("harness")}


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules) & modules for p in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_report_imports_nothing_above_it():
    bad = {m: sorted(i for i in deps if i.startswith(ABOVE_THE_REPORT))
           for m, deps in graph().items() if m.startswith("harness.report")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_the_shared_results_model_imports_neither_runner_nor_report():
    bad = {m: sorted(i for i in deps if i.startswith((*ABOVE_THE_REPORT, "harness.report")))
           for m, deps in graph().items() if m.startswith("harness.cells")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_no_import_cycle_runs_through_the_report():
    # Package __init__ files that re-export their own modules are not cycles of design;
    # leave them out so that what remains is module-to-module.
    edges = {m: {d for d in deps if not m.startswith(d + ".")}
             for m, deps in graph().items()}
    through = [c for c in cycles(edges) if any(m.startswith("harness.report") for m in c)]
    assert through == []


def test_the_runner_reaches_the_report_in_one_place():
    callers = sorted(m for m, deps in graph().items()
                     if m.startswith(("harness.runner", "harness.tracking", "harness.tuning"))
                     and any(d.startswith("harness.report") for d in deps))
    assert callers == ["harness.runner.command"]  # tracking draws no figure
    command = (PACKAGE / "runner" / "command.py").read_text(encoding="utf-8")
    assert command.count("write_run_report(") == 1


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    # The test's own machinery, on a made-up graph: it must be able to fail.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
