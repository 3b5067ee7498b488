"""Which code computed a table's records: one line when they mix code identities, and
what differs between two runs' code (``check --against-results``).

A record's ``code`` block (harness.cells.code) names the harness (version, commit,
dirty) and the task's and method's code (provider and sources' sha256). Records made
before harness recorded it have none: they count as code unknown and are named as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.cells.code import changes, key


def _harness_key(block: Any) -> tuple[Any, ...] | None:
    if not isinstance(block, Mapping) or not isinstance(block.get("harness"), Mapping):
        return None
    h = block["harness"]
    return (h.get("version"), h.get("commit"), h.get("dirty"))


def code_mix(records: Iterable[Mapping[str, Any]]) -> str | None:
    """One line saying how the records' code identities differ (None when one code, or
    only unknown code, computed them all): the task's code, a method's code (by label),
    the harness's version or commit, and records of unknown code among known ones."""
    records = list(records)
    known = [r for r in records if isinstance(r.get("code"), Mapping)]
    unknown = len(records) - len(known)
    parts = []
    tasks = {key(r["code"], "task") for r in known}
    if len(tasks) > 1:
        parts.append(f"task {known[0].get('task')}: {len(tasks)} versions of its code")
    by_label: dict[str, set[Any]] = {}
    for r in known:
        by_label.setdefault(str(r.get("label") or r.get("method")), set()).add(
            key(r["code"], "method"))
    mixed = sorted(label for label, keys in by_label.items() if len(keys) > 1)
    if mixed:
        parts.append(f"method {', '.join(mixed)}: more than one version of its code")
    harness = {_harness_key(r["code"]) for r in known}
    if len(harness) > 1:
        parts.append(f"harness: {len(harness)} versions or commits")
    if unknown and known:
        parts.append(f"{unknown} of {len(records)} records of unknown code (made before "
                     "harness recorded it)")
    if not parts:
        return None
    return "note: these results mix code identities: " + "; ".join(parts)


def code_difference(new: Iterable[Mapping[str, Any]], old: Iterable[Mapping[str, Any]]
                    ) -> str | None:
    """One line naming the task and method code that differs between the cells both
    result sets hold (same label, size and seed), and harness commits that differ; None
    when none."""
    def cell(r: Mapping[str, Any]) -> tuple[str, Any, Any]:
        return (str(r.get("label") or r.get("method")), r.get("size"), r.get("seed"))

    old_by_id = {cell(r): r for r in old}
    seen: dict[str, None] = {}
    harness: set[tuple[Any, ...]] = set()
    unknown = 0
    for record in new:
        before = old_by_id.get(cell(record))
        if before is None:
            continue
        a, b = before.get("code"), record.get("code")
        if not isinstance(a, Mapping) or not isinstance(b, Mapping):
            unknown += 1
            continue
        for change in changes(a, b):
            seen.setdefault(change, None)
        if _harness_key(a) != _harness_key(b):
            harness.add((_harness_key(a), _harness_key(b)))
    parts = list(seen)
    if harness:
        parts.append("harness version or commit")
    if unknown:
        parts.append(f"{unknown} shared cell(s) of unknown code in one of them")
    if not parts:
        return None
    return "note: NEW and OLD differ in code: " + "; ".join(parts)
