"""Tasks and the runner meet methods through declarations only (issue 12): no module
under harness/tasks or harness/runner imports a concrete method class or compares a
method's name, and a declared term form does not survive an override of the loss."""

from __future__ import annotations

import ast
from pathlib import Path

from torch import Tensor

import harness
from harness.methods.base import Method
from harness.methods.imm_sampled import ImmSampled
from harness.methods.reverse_kd import ReverseKd

ROOT = Path(harness.__file__).parent
CONCRETE = {"harness.methods." + m for m in (
    "baseline", "interpolation", "noising", "reverse_kd", "imm_sampled", "imm_serialized",
    "mlm")}


def _modules() -> list[Path]:
    return sorted((ROOT / "tasks").rglob("*.py")) + sorted((ROOT / "runner").rglob("*.py"))


def test_tasks_and_runner_import_no_concrete_method() -> None:
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in CONCRETE:
                offenders.append(f"{path.relative_to(ROOT)}: from {node.module}")
    assert not offenders, offenders


def test_tasks_and_runner_compare_no_method_name() -> None:
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Compare):
                continue
            text = ast.unparse(node)
            if "method.name" in text or "type(method)" in text:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    assert not offenders, offenders


def test_term_form_is_declared_and_dropped_by_an_override() -> None:
    assert ReverseKd.term_form == "restricted_cross_entropy"
    assert ImmSampled.term_form == "induced_cross_entropy"

    class Keeps(ImmSampled):
        name = "keeps"

    class Changes(ImmSampled):
        name = "changes"

        def term(self, views, step: int) -> Tensor:  # noqa: ANN001
            return super().term(views, step) * 2

    class Restates(Changes):
        name = "restates"
        term_form = "induced_cross_entropy"

    assert Keeps.term_form == "induced_cross_entropy"
    assert Changes.term_form is None
    assert Restates.term_form == "induced_cross_entropy"
    assert Method.term_form is None
