"""Outside tasks and methods: installed plugins (entry points) and a spec's own modules.

An installed package registers components through entry points in the groups
``harness.methods`` and ``harness.tasks``; each entry point names a ``Component`` in a
light module of the package (the class and its params model as lazy ``"module:attr"``
strings, and a description):

    [project.entry-points."harness.methods"]
    pskd = "harness_pskd.registration:PSKD"

A spec may also list ``plugins:``: importable modules, or ``.py`` files beside the spec,
that call ``register_method`` / ``register_task`` when imported. Installed plugins are
discovered once per process, when the spec schema, ``harness list`` or a cell needs the
registries; one that fails to load is reported in one line naming it and left out, so it
never breaks ``harness --help`` or specs that do not use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.registry.core import PluginError, Registry

GROUPS = ("harness.methods", "harness.tasks")
_origin: ContextVar[str | None] = ContextVar("harness_plugin_origin", default=None)
_discovered = False
_loaded_files: dict[Path, str] = {}
warnings: list[str] = []


@dataclass(frozen=True)
class Component:
    """What a plugin's entry point names: its class and params model (lazy strings)."""

    target: str  # "package.module:Class"
    config: str  # "package.config:Params" (a light module: validating specs imports it)
    description: str = ""


def current_origin() -> str | None:
    """The origin of components registered right now (while a plugin loads)."""
    return _origin.get()


@contextlib.contextmanager
def origin(text: str) -> Iterator[None]:
    token = _origin.set(text)
    try:
        yield
    finally:
        _origin.reset(token)


def _registries() -> dict[str, Registry]:
    from harness.registry import METHODS, TASKS

    return {"harness.methods": METHODS, "harness.tasks": TASKS}


def discover(force: bool = False) -> list[str]:
    """Register every installed plugin's components (once per process); return the
    one-line warnings of those that failed (also printed once to stderr)."""
    global _discovered
    if _discovered and not force:
        return list(warnings)
    _discovered = True
    for group, registry in _registries().items():
        for point in metadata.entry_points(group=group):
            dist = getattr(point, "dist", None)
            where = f"{dist.name} {dist.version}" if dist is not None else point.value
            text = f"plugin {where}, entry point {point.name!r}"
            if point.name in registry and registry.entry(point.name).origin == text:
                continue
            try:
                component = point.load()
                if not isinstance(component, Component):
                    raise PluginError(f"{point.value} is a {type(component).__name__}, not a "
                                      "harness.registry.Component")
                registry.add(point.name, component.target, config=component.config,
                             description=component.description, origin=text)
                registry.config(point.name)  # specs need it: fail now, not mid-validation
            except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not raised
                registry.remove(point.name)
                reason = str(exc) if isinstance(exc, PluginError) else (
                    f"{type(exc).__name__}: {exc}")
                line = (f"warning: {registry.kind} {point.name!r} ({text}) was not loaded: "
                        f"{' '.join(reason.split())[:300]}")
                registry.broken[point.name] = " ".join(reason.split())[:300]
                warnings.append(line)
                print(line, file=sys.stderr)
    return list(warnings)


def load_spec_plugins(plugins: list[str], spec_dir: Path | None) -> list[str]:
    """Import a spec's ``plugins`` (module names, or ``.py`` files relative to the spec's
    folder) once per process; return them as workers must load them again (module names,
    absolute file paths). Raises PluginError (one line) when one cannot be imported."""
    resolved = []
    for ref in plugins:
        if ref.endswith(".py"):
            path = Path(ref).expanduser()
            if not path.is_absolute() and spec_dir is not None:
                path = spec_dir / path
            path = path.resolve()
            _load_file(path, ref)
            resolved.append(str(path))
        else:
            with origin(f"spec plugin module {ref}"):
                try:
                    importlib.import_module(ref)
                except Exception as exc:  # noqa: BLE001 - one line naming the plugin
                    raise PluginError(f"plugin {ref!r}: cannot import it: "
                                      f"{type(exc).__name__}: {exc}") from None
            resolved.append(ref)
    return resolved


def _load_file(path: Path, ref: str) -> None:
    if path in _loaded_files:
        return
    if not path.is_file():
        raise PluginError(f"plugin {ref!r}: no such file {path}")
    name = f"harness_spec_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"plugin {ref!r}: {path} is not a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    with origin(f"spec plugin {path}"):
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - one line naming the plugin
            sys.modules.pop(name, None)
            raise PluginError(f"plugin {ref!r} ({path}): {type(exc).__name__}: {exc}") from None
    _loaded_files[path] = name


def register_method(name: str, cls: Any, params: Any, description: str = "") -> None:
    """Register a method class and its params model (from a spec's plugin module)."""
    from harness.registry import METHODS

    METHODS.add(name, cls, config=params, description=description,
                origin=current_origin() or "registered at run time")


def register_task(name: str, cls: Any, params: Any, description: str = "") -> None:
    """Register a task class and its params model (from a spec's plugin module)."""
    from harness.registry import TASKS

    TASKS.add(name, cls, config=params, description=description,
              origin=current_origin() or "registered at run time")
