"""Load a YAML spec and turn pydantic's errors into one line each, naming file and field.

Example: ``specs/x.yaml: methods[2].lamda: unknown field (did you mean 'lambda'?)``.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from harness.registry import METHODS, TASKS, did_you_mean
from harness.spec.models import spec_model
from harness.yamlio import YamlFileError, read_yaml_file

MAX_ERROR_LINES = 10


class SpecError(Exception):
    """A spec could not be loaded; ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> Any:
    """Read and validate ``path``; raise SpecError with one-line messages on failure."""
    path = Path(path)
    data = read_yaml(path)
    if overrides:
        data = apply_overrides(data, overrides)
    load_plugins_of(data, path)
    spec = validate_spec(data, str(path))
    spec._spec_file = path.resolve()  # relative paths start at its project folder
    return spec


def load_plugins_of(data: dict[str, Any], path: Path | None) -> list[str]:
    """Import the spec's ``plugins`` before it is validated (they may register the task
    or methods it names); one SpecError line naming the plugin when one fails."""
    from harness.registry import PluginError
    from harness.registry.plugins import load_spec_plugins

    plugins = data.get("plugins") or []
    source = str(path) if path is not None else "<spec>"
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise SpecError([f"{source}: plugins: expected a list of module names or .py files"])
    try:
        resolved = load_spec_plugins(plugins, path.parent if path is not None else None)
    except PluginError as exc:
        raise SpecError([f"{source}: plugins: {exc}"]) from None
    data["plugins"] = resolved  # as workers must load them again
    return resolved


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = read_yaml_file(path, "spec file")
    except YamlFileError as exc:
        raise SpecError([str(exc)]) from None
    if not isinstance(data, dict):
        raise SpecError([f"{path}: a spec must be a mapping of fields, got {type(data).__name__}"])
    return data


def validate_spec(data: dict[str, Any], source: str = "<spec>") -> Any:
    model = spec_model()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{source}: {line}"
            for err in exc.errors()
            for line in format_error(model, err).splitlines()
        ]
        raise SpecError(capped(list(dict.fromkeys(lines)))) from None


def capped(lines: list[str], limit: int = MAX_ERROR_LINES) -> list[str]:
    """At most ``limit`` lines, the last saying how many more there were."""
    if len(lines) <= limit:
        return lines
    return [*lines[: limit - 1], f"... and {len(lines) - limit + 1} more"]


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``task.params.epochs=10``) on a copy of the raw spec data."""
    data = yaml.safe_load(yaml.safe_dump(data))
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError([f"--only/--set {dotted}: {part} is not a mapping"])
        node[parts[-1]] = value
    return data


def format_error(model: type[BaseModel], err: dict[str, Any]) -> str:
    """One line: ``field.path: message`` with union tags dropped and hints added."""
    loc, fields_here = _walk(model, tuple(err["loc"]))
    where = _render(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        hint = _did_you_mean_quoted(name, fields_here)
        return f"{where}: unknown field{hint}"
    if kind == "missing":
        return f"{where}: missing required field"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        registry = TASKS if loc and loc[0] == "task" else METHODS
        tag = err.get("ctx", {}).get("tag")
        field = f"{where}.name" if where else "name"
        if kind == "union_tag_not_found" or tag is None:
            return f"{field}: missing; registered {registry.kind}s: {', '.join(registry.names())}"
        return (
            f"{field}: unknown {registry.kind} {tag!r}."
            f"{did_you_mean(str(tag), registry.names())}"
            f" Registered {registry.kind}s: {', '.join(registry.names())}"
        )
    message = err["msg"].removeprefix("Value error, ")
    if kind == "strict_number" and where:  # lines are "field: problem" below ``where``
        return "\n".join(f"{where}.{line}" for line in message.splitlines())
    if not where:
        return message
    return "\n".join(f"{where}: {line}" for line in message.splitlines())


def _did_you_mean_quoted(name: str, candidates: list[str]) -> str:
    hint = did_you_mean(name, candidates)
    if not hint:
        return ""
    return f" (did you mean '{hint.removeprefix(' Did you mean: ').removesuffix('?')}'?)"


def _render(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], list[str]]:
    """Follow ``loc`` through the model's types, dropping union-tag parts.

    Returns the cleaned location and the field names valid at its last step (for
    did-you-mean on unknown fields).
    """
    kept: list[Any] = []
    current: Any = model
    for i, part in enumerate(loc):
        current = _unwrap(current)
        members = _union_members(current)
        if members is None and isinstance(current, type) and issubclass(current, BaseModel):
            members = [current]  # a discriminated "union" of one variant still tags its loc
            if isinstance(part, str) and part in _field_names(current):
                members = None
        if members is not None and isinstance(part, str):
            chosen = _pick_member(members, part)
            if chosen is not None:
                current = chosen
                continue
        kept.append(part)
        if i == len(loc) - 1:
            break
        current = _step(current, part)
    parent = _unwrap(current)
    if _union_members(parent) is not None and len(_union_members(parent)) == 1:
        parent = _union_members(parent)[0]
    return tuple(kept), _field_names(parent)


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    members = _union_members(tp)
    if members is not None:
        non_none = [m for m in members if m is not type(None)]
        if len(non_none) == 1:
            return _unwrap(non_none[0])
    return tp


def _union_members(tp: Any) -> list[Any] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return list(typing.get_args(tp))
    return None


def _pick_member(members: list[Any], tag: str) -> Any:
    for member in members:
        if typing.get_origin(member) is typing.Annotated:
            for meta in typing.get_args(member)[1:]:
                if getattr(meta, "tag", None) == tag:
                    return typing.get_args(member)[0]
        inner = _unwrap(member)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            for key in ("name", "schedule"):
                field = inner.model_fields.get(key)
                if field is not None and typing.get_args(field.annotation) == (tag,):
                    return inner
    return None


def _step(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
        for name, field in tp.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _field_names(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [field.alias or name for name, field in tp.model_fields.items()]
    return []
