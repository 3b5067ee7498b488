"""What a spec needs beyond its schema, checked by ``harness validate`` and before a run
computes anything (so a spec never passes validate and then fails every cell): each
plugin task or method it names imports (its class, not only its params model), and the
optional extras its task needs are installed."""

from __future__ import annotations

import importlib.util
from typing import Any

DIST = "imm-harness"


def missing_requirements(spec: Any) -> list[str]:
    """One line per unmet requirement of validated ``spec`` ([] when it can run here)."""
    from harness.registry import BUILT_IN, METHODS, TASKS, PluginError

    problems: list[str] = []
    names = [(TASKS, spec.task.name)] + [(METHODS, m.name) for m in spec.methods]
    for registry, name in dict.fromkeys(names):
        entry = registry.entry(name)
        if entry.origin == BUILT_IN:
            continue  # the harness's own: its imports are its extras, checked below
        try:
            entry.load()
        except PluginError as exc:
            problems.append(f"{registry.kind} {name}: {' '.join(str(exc).split())[:400]}")
    needs = getattr(spec.task.params, "required_modules", None)
    for extra, modules in (needs() if needs is not None else {}).items():
        absent = [m for m in modules if not _importable(m)]
        if absent:
            problems.append(
                f"task {spec.task.name} needs the {extra!r} extra ({', '.join(absent)} not "
                f'installed): pip install -e ".[{extra}]" in a checkout of harness, or '
                f'pip install "{DIST}[{extra}]"')
    return problems


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
