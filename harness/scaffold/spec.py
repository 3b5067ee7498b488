"""The text of a new spec (``harness init spec``): YAML with comments, built from the task's
and the methods' params models, so it follows them as they change."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import TypeAdapter

from harness.errors import HarnessError

LAMBDA = 1.0
RUNS = 20


def _flow(value: Any) -> str:
    """A value as one line of YAML."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix(
        "\n...").strip()


def _defaults(params_cls: Any) -> dict[str, Any]:
    """Each field's default as JSON-like data (fields without a default are left out)."""
    out: dict[str, Any] = {}
    for field, info in params_cls.model_fields.items():
        if info.is_required():
            continue
        default = info.get_default(call_default_factory=True)
        out[field] = TypeAdapter(info.annotation).dump_python(default, mode="json")
    return out


def _task_lines(params_cls: Any) -> list[str]:
    """The ``params:`` block: the contract's tiny settings on, every field listed."""
    quick = dict(params_cls.contract_params)
    lines = ["  params:"]
    if quick:
        lines.append("    # Tiny settings (the task's contract tests use them) so that this spec "
                     "runs in")
        lines.append("    # seconds; delete them for a real run.")
        lines += [f"    {key}: {_flow(value)}" for key, value in quick.items()]
    else:
        lines[0] = "  params: {}"
    lines.append("    # Every setting of the task, at its default (uncomment to change):")
    for field, default in _defaults(params_cls).items():
        if field in quick:
            continue
        description = params_cls.model_fields[field].description or ""
        note = f"  # {description}" if description else ""
        lines.append(f"    # {field}: {_flow(default)}{note}")
    return lines


def _method_lines(methods: tuple[str, ...]) -> list[str]:
    from harness.registry import METHODS

    lines = ["methods:"]
    for name in methods:
        params_cls = METHODS.config(name)
        lines.append(f"  - name: {name}")
        if params_cls.uses_lambda:
            lines.append(f"    lambda: {LAMBDA}        # a number, tune, a schedule or a table")
        defaults = _defaults(params_cls)
        if defaults:
            lines.append("    # params:            # its settings, at their defaults:")
        for field, default in defaults.items():
            description = params_cls.model_fields[field].description or ""
            note = f"  # {description}" if description else ""
            lines.append(f"    #   {field}: {_flow(default)}{note}")
    return lines


def spec_text(name: str, task: str, methods: tuple[str, ...],
              sizes: tuple[int, ...] | None) -> str:
    """The spec, checked by the same validation as ``harness validate``."""
    from harness.registry import TASKS, discover
    from harness.spec import SpecError, validate_spec

    discover()
    params_cls = TASKS.config(task)
    size = params_cls.contract_size
    chosen = tuple(sizes) if sizes else (size, 2 * size)
    # Tasks whose contract cells train one replicate are the heavy ones: keep one.
    runs = RUNS if params_cls.contract_runs > 1 else 1
    lines = [
        f"# {name}: a harness spec, written by `harness init spec`.",
        f"#   harness validate {name}.yaml          # check it (add --data-dir DIR for data files)",
        f"#   harness run {name}.yaml --workers 2   # results in results/{name}/",
        "# `harness schema` prints every field; the docs' spec reference explains them.",
        f"name: {name}",
        "task:",
        f"  name: {task}",
        *_task_lines(params_cls),
        *_method_lines(methods),
        f"sizes: {_flow(list(chosen))}              # dataset sizes: one cell per method, "
        "size and seed",
        "seeds: [0]",
        f"runs: {runs}                    # replicates inside each cell (their spread is in the "
        "report)",
        "tracking: {enabled: false}          # true: every cell is an MLflow run",
        "",
    ]
    text = "\n".join(lines)
    try:
        validate_spec(yaml.safe_load(text))
    except SpecError as exc:
        raise HarnessError(f"the spec written for task {task!r} does not validate: "
                           f"{exc.lines[0]}") from None
    return text
