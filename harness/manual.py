"""The generated pages of the manual: the spec reference, from the pydantic models (and the
registered tasks' and methods' params models), and the command reference, from the
argparse parser. The docs site builds them at build time (``docs/hooks.py``), so they
follow the code; ``python -m harness.manual spec|commands`` prints them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel

# ---- the spec reference ---------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, no pipes, no raw HTML)."""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A JSON-schema property as a short type: ``int > 0``, ``"tpe" | "random"``, ..."""
    if "$ref" in prop:
        title = defs.get(prop["$ref"].rsplit("/", 1)[-1], {}).get("title", "object")
        for suffix, kind in (("TaskEntry", "task entry"), ("MethodEntry", "method entry")):
            if title.endswith(suffix):
                return kind
        return title
    if "const" in prop:
        return json.dumps(prop["const"])
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    for union in ("anyOf", "oneOf"):
        if union in prop:
            return " | ".join(dict.fromkeys(_type_of(p, defs) for p in prop[union]))
    kind = prop.get("type", "any")
    if kind == "array":
        if "prefixItems" in prop:
            return "[" + ", ".join(_type_of(p, defs) for p in prop["prefixItems"]) + "]"
        return f"list of {_type_of(prop.get('items', {}), defs)}"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"map to {_type_of(values, defs)}" if isinstance(values, dict) else "mapping"
    name = {"integer": "int", "number": "float", "string": "str", "boolean": "bool",
            "null": "null"}.get(kind, kind)
    bounds = [f"{op} {prop[key]}" for key, op in (("exclusiveMinimum", ">"),
                                                   ("minimum", ">="),
                                                   ("exclusiveMaximum", "<"),
                                                   ("maximum", "<=")) if key in prop]
    if "minItems" in prop:
        bounds.append(f"at least {prop['minItems']}")
    return f"{name} {', '.join(bounds)}".strip()


def _default(info: Any) -> str:
    """A field's default as YAML-ish JSON, "required", or where a nested model's are."""
    from pydantic import TypeAdapter

    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its fields' defaults"
    try:
        value = TypeAdapter(info.annotation).dump_python(value, mode="json")
    except Exception:  # noqa: BLE001 - a default no adapter dumps is shown as text
        value = str(value)
    return f"`{json.dumps(value)}`"


def model_table(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    """A Markdown table of a model's fields: name, type, default, description."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = {key: {"title": value.get("title", key)} for key, value in
            schema.get("$defs", {}).items()}
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        if name in skip:
            continue
        rows.append(f"| `{name}` | {_cell(_type_of(prop, defs))} | "
                    f"{_cell(_default(fields[name]))} | "
                    f"{_cell(prop.get('description', ''))} |")
    return rows if len(rows) > 2 else ["(no settings)"]


def _doc(obj: Any) -> str:
    """The first paragraph of a docstring, as one line of Markdown."""
    text = (obj.__doc__ or "").strip()
    return _cell(text.split("\n\n")[0]) if text else ""


def spec_reference() -> str:
    """The spec reference page (Markdown)."""
    from harness.registry import METHODS, TASKS, discover
    from harness.spec import spec_model
    from harness.spec.lambdas import LinearRatioSchedule, TableSchedule, TuneLambda
    from harness.spec.models import (
        MethodEntryBase,
        Resources,
        ResourcesOverride,
        TaskEntryBase,
        TrackingSettings,
        TuningSettings,
    )

    discover()
    spec = spec_model()
    lines = [
        "# Spec reference",
        "",
        "<!-- Generated at build time by harness.manual from the pydantic models; do not "
        "edit. -->",
        "",
        "A spec is a YAML file. This page is generated from the models that validate it "
        "(the installed plugins' tasks and methods included), so it is the schema "
        "`harness validate` applies. `harness schema` prints the same as JSON Schema, for "
        "editors. Unknown fields, inf/NaN and numbers written as booleans or strings are "
        "errors, each reported in one line naming the file and the field.",
        "",
        "## Top level",
        "",
        _doc(spec),
        "",
        *model_table(spec),
        "",
        "## `task`",
        "",
        "`name` picks the task (one of the sections below); `params` holds its settings, "
        "each at its default when left out.",
        "",
        *model_table(TaskEntryBase),
        "",
        "### `task.resources`",
        "",
        _doc(Resources),
        "",
        *model_table(Resources),
        "",
    ]
    for name in TASKS.names():
        params = TASKS.config(name)
        origin = dict((n, o) for n, o, _ in TASKS.origins())[name]
        metrics = ", ".join(
            f"`{m}` ({'higher' if params.higher_is_better.get(m, True) else 'lower'} is "
            "better)" for m in params.metrics)
        lines += [f"### Task `{name}`", "", f"{_cell(TASKS.entry(name).description)} "
                  f"({origin}).", "", _doc(params), "", f"Metrics: {metrics}; the first "
                  "is the default `metric`.", "", *model_table(params), ""]
    lines += [
        "## `methods`",
        "",
        "A list of method entries; `name` picks the method (sections below), `params` "
        "holds its settings. Every entry has these fields too:",
        "",
        *model_table(MethodEntryBase),
        "",
        "`lambda` is required for methods that use one and refused for those that do not "
        "(said under each method). `resources` overrides `task.resources` per field:",
        "",
        *model_table(ResourcesOverride),
        "",
    ]
    for name in METHODS.names():
        params = METHODS.config(name)
        origin = dict((n, o) for n, o, _ in METHODS.origins())[name]
        uses = "takes a `lambda`" if params.uses_lambda else "takes no `lambda`"
        lines += [f"### Method `{name}`", "", f"{_cell(METHODS.entry(name).description)} "
                  f"({origin}; {uses}).", ""]
        doc = _doc(params)
        if doc and not doc.startswith("Base of all"):
            lines += [doc, ""]
        lines += [*model_table(params), ""]
    lines += [
        "## `lambda`",
        "",
        "A number (fixed), `tune` (Optuna, per method and size, on validation data), "
        "`{tune: {...}}` with the settings below, a `linear_ratio` schedule or a `table`. "
        "The ratio r = lambda / (1 + lambda) is the paper's axis.",
        "",
        "### `lambda: tune` / `{tune: {...}}`",
        "",
        _doc(TuneLambda),
        "",
        *model_table(TuneLambda),
        "",
        "### `lambda: {schedule: linear_ratio, ...}`",
        "",
        _doc(LinearRatioSchedule),
        "",
        *model_table(LinearRatioSchedule),
        "",
        "### `lambda: {schedule: table, values: {SIZE: LAMBDA}}`",
        "",
        _doc(TableSchedule),
        "",
        *model_table(TableSchedule),
        "",
        "## `tuning`",
        "",
        _doc(TuningSettings),
        "",
        *model_table(TuningSettings),
        "",
        "## `tracking`",
        "",
        _doc(TrackingSettings),
        "",
        *model_table(TrackingSettings),
        "",
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- the command reference ------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser
                 ) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each subcommand, in the parser's order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups,
                        prefix="")
    return formatter.format_help().strip()


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | description |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            meta = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
            name = ", ".join(f"`{opt}{meta}`" for opt in action.option_strings)
        else:
            name = f"`{action.metavar or action.dest}`"
        text = action.help or ""
        if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
            text = f"{text} (one of: {', '.join(map(str, action.choices))})".strip()
        default = action.default
        shown = ("" if default in (None, False, [], argparse.SUPPRESS) or
                 action.nargs == 0 else f"`{default}`")
        rows.append(f"| {name} | {shown} | {_cell(text)} |")
    return rows if len(rows) > 2 else []


def command_reference() -> str:
    """The command reference page (Markdown)."""
    from harness.cli import build_parser

    parser = build_parser()
    lines = [
        "# Command reference",
        "",
        "<!-- Generated at build time by harness.manual from the argparse parser; do not "
        "edit. -->",
        "",
        "Every command prints a mistake as one line on stderr and exits 1 (2 for a "
        "malformed command line), never with a traceback. `harness COMMAND --help` "
        "prints the same as this page.",
        "",
        "```",
        _usage(parser),
        "```",
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    commands = _subcommands(parser)
    lines += [f"| [`{name}`](#harness-{name}) | {_cell(text)} |" for name, text, _ in commands]
    lines.append("")
    for name, text, sub in commands:
        lines += [f"## harness {name}", "", _cell(text[:1].upper() + text[1:]) + ".", "",
                  "```", _usage(sub), "```", "", *_argument_rows(sub), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    args = (argv if argv is not None else sys.argv[1:]) or ["spec"]
    pages = {"spec": spec_reference, "commands": command_reference}
    if args[0] not in pages:
        print(f"usage: python -m harness.manual {'|'.join(pages)}", file=sys.stderr)
        return 2
    sys.stdout.write(pages[args[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
