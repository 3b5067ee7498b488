"""The identity of the code that computes a cell, recorded in its ``code`` block.

- **harness**: the ``imm-harness`` distribution's version and, when the harness package
  is a file in a git checkout, that checkout's commit and whether the package's own
  files have changes (``dirty``). Found from ``harness.__file__``, never from the working
  directory: a run from another folder, or from inside another project's repository,
  records the harness's commit (or none).
- **task** and **method**: who provides the component (``dist``/``version`` of the
  distribution: ``imm-harness`` for built-ins, the plugin's own for an installed plugin;
  ``file`` for a plugin file beside the spec) and a sha256 over its source files: a
  built-in task's subpackage (``harness/tasks/ptb_lstm/*.py``); a built-in method's module,
  the ``harness.methods`` modules it imports and its params model's source; an installed
  plugin's whole top-level package; a spec's plugin file.

The runner compares a finished record's task and method identity with the current code
before it resumes the cell (``changes``). Nothing here imports a component: files are
found from module names, so the main process of a sweep stays light. Hashes are cached
per ``CodeIdentity`` (one per sweep).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

HARNESS_DIST = "imm-harness"
# Record key -> what a difference in it means (shown in the one-line notes).
COMPARED = ("dist", "version", "sha256")


def harness_root() -> Path:
    """The folder of the imported ``harness`` package."""
    import harness

    return Path(harness.__file__).resolve().parent


def harness_identity() -> dict[str, Any]:
    """{distribution, version, commit, dirty} of the harness itself (see the module doc)."""
    try:
        version: str | None = metadata.version(HARNESS_DIST)
    except metadata.PackageNotFoundError:
        version = None
    commit, dirty = source_commit(harness_root())
    return {"distribution": HARNESS_DIST, "version": version, "commit": commit,
            "dirty": dirty}


def legacy_commit(identity: Mapping[str, Any]) -> str | None:
    """The record's older ``git_commit`` field: the commit, "-dirty" when changed."""
    commit = identity.get("commit")
    if not commit:
        return None
    return f"{commit}-dirty" if identity.get("dirty") else str(commit)


def _git(folder: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess | None:
    """``git -C folder args`` with the caller's GIT_* variables removed (a GIT_DIR set by
    the user's shell would otherwise name another repository)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except (OSError, subprocess.SubprocessError):
        return None


def source_commit(package: Path) -> tuple[str | None, bool | None]:
    """(HEAD, dirty) of the git checkout that tracks ``package``'s ``__init__.py``;
    (None, None) when the package is not a tracked file of a checkout (an installed
    copy, even one inside another project's repository). ``dirty``: the package's own
    files differ from HEAD (modified or untracked)."""
    tracked = _git(package, "ls-files", "--error-unmatch", "--", "__init__.py")
    if tracked is None or tracked.returncode != 0:
        return None, None
    head = _git(package, "rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return None, None
    status = _git(package, "status", "--porcelain", "--", ".")
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return head.stdout.strip(), dirty


def digest(files: Iterable[Path], root: Path, extra: str = "") -> str:
    """sha256 over each file's path relative to ``root`` and its bytes (sorted), then
    ``extra``: renaming or editing any of them changes it."""
    h = hashlib.sha256()
    for path in sorted(set(files)):
        h.update(str(path.relative_to(root)).encode("utf-8") + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    h.update(extra.encode("utf-8"))
    return h.hexdigest()


def package_files(folder: Path) -> list[Path]:
    """Every .py file under ``folder`` (caches and hidden folders left out)."""
    return [p for p in folder.rglob("*.py")
            if not any(part.startswith(".") or part == "__pycache__"
                       for part in p.relative_to(folder).parts)]


def module_file(module: str) -> Path | None:
    """The source file of ``module`` without importing it: an already imported module's
    ``__file__``, else found from its top-level package's folder (only the top-level
    package is located, nothing is executed)."""
    loaded = sys.modules.get(module)
    if loaded is not None and getattr(loaded, "__file__", None):
        return Path(loaded.__file__).resolve()
    top, _, rest = module.partition(".")
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    if not rest:
        return Path(found.origin).resolve() if found.origin else None
    locations = list(found.submodule_search_locations or [])
    for base in locations:
        path = Path(base).joinpath(*rest.split("."))
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                return candidate.resolve()
    return None


def distribution_of(top: str, providers: Mapping[str, list[str]]) -> tuple[str | None,
                                                                          str | None]:
    """(name, version) of the installed distribution that provides top-level ``top``
    (``providers``: ``importlib.metadata.packages_distributions()``)."""
    names = providers.get(top) or []
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def _module_of(target: Any) -> str | None:
    if isinstance(target, str):
        return target.partition(":")[0]
    return getattr(target, "__module__", None)


def _imported_methods(path: Path, methods_dir: Path) -> set[Path]:
    """``path`` and the ``harness.methods`` modules it imports, transitively."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen or not current.is_file():
            continue
        seen.add(current)
        tree = ast.parse(current.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("harness.methods."):
                    todo.append(methods_dir / f"{name.split('.')[2]}.py")
    return seen


class CodeIdentity:
    """The code identity of each task and method of one sweep (hashed once each)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._harness: dict[str, Any] | None = None
        self._providers: Mapping[str, list[str]] | None = None

    def harness(self) -> dict[str, Any]:
        if self._harness is None:
            self._harness = harness_identity()
        return dict(self._harness)

    def _distribution(self, top: str) -> tuple[str | None, str | None]:
        if self._providers is None:
            self._providers = metadata.packages_distributions()
        return distribution_of(top, self._providers)

    def of_cell(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The ``code`` block of a cell's record, from its resolved config."""
        return {"harness": self.harness(),
                "task": self.component("task", str(config["task"]["name"])),
                "method": self.component("method", str(config["method"]["name"]))}

    def component(self, kind: str, name: str) -> dict[str, Any]:
        key = (kind, name)
        if key not in self._cache:
            self._cache[key] = self._identify(kind, name)
        return dict(self._cache[key])

    def _identify(self, kind: str, name: str) -> dict[str, Any]:
        from harness.registry import METHODS, TASKS, discover

        discover()
        registry = TASKS if kind == "task" else METHODS
        entry = registry.entry(name)
        module = _module_of(entry.target)
        path = module_file(module) if module else None
        if module is None or path is None:
            return {"name": name, "dist": None, "version": None, "file": None,
                    "sha256": None, "files": 0}
        root = harness_root()
        if module == "harness" or module.startswith("harness."):
            return self._built_in(kind, name, entry, path, root, self.harness()["version"])
        top = module.partition(".")[0]
        dist, version = self._distribution(top)
        if dist is None and path.parent.name != top:
            # A plugin file beside a spec (or any lone module file): that file alone.
            return {"name": name, "dist": None, "version": None, "file": str(path),
                    "sha256": digest([path], path.parent), "files": 1}
        folder = _top_folder(path, module)
        files = package_files(folder) if folder is not None else [path]
        base = folder.parent if folder is not None else path.parent
        return {"name": name, "dist": dist, "version": version, "file": None,
                "sha256": digest(files, base), "files": len(files)}

    @staticmethod
    def _built_in(kind: str, name: str, entry: Any, path: Path, root: Path,
                  version: str | None) -> dict[str, Any]:
        if kind == "task":
            folder = path.parent
            files = package_files(folder) if folder != root / "tasks" else [path]
            extra = ""
        else:
            files = sorted(_imported_methods(path, root / "methods"))
            extra = _params_source(entry)
        return {"name": name, "dist": HARNESS_DIST, "version": version,
                "file": None, "sha256": digest(files, root.parent, extra),
                "files": len(files)}


def _top_folder(path: Path, module: str) -> Path | None:
    """The folder of ``module``'s top-level package, from its file's path."""
    depth = module.count(".") + (1 if path.name == "__init__.py" else 0)
    folder = path.parent
    for _ in range(depth - 1):
        folder = folder.parent
    return folder if depth >= 1 else None


def _params_source(entry: Any) -> str:
    """The source of a built-in method's params model (its defaults change its numbers;
    ``harness/methods/config.py`` holds every method's, so the file itself is not hashed)."""
    import inspect

    try:
        return inspect.getsource(entry.load_config())
    except (OSError, TypeError):
        return ""


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What differs between a record's code block ``old`` and the current ``new``, as
    short phrases ('method pskd: harness-pskd 0.1.0 -> 0.1.1'); [] when the task and
    method are the same code, or when ``old`` has no code block (code unknown)."""
    if not isinstance(old, Mapping):
        return []
    out = []
    for kind in ("task", "method"):
        before, after = old.get(kind), new.get(kind)
        if not isinstance(before, Mapping) or not isinstance(after, Mapping):
            continue
        what = []
        if (before.get("dist"), before.get("version")) != (after.get("dist"),
                                                           after.get("version")):
            what.append(f"{_provider(before)} -> {_provider(after)}")
        if before.get("sha256") != after.get("sha256"):
            what.append(f"sources {_short(before.get('sha256'))} -> "
                        f"{_short(after.get('sha256'))}")
        if what:
            out.append(f"{kind} {after.get('name')}: {', '.join(what)}")
    return out


def _provider(block: Mapping[str, Any]) -> str:
    if block.get("dist"):
        return f"{block['dist']} {block.get('version') or '?'}"
    return str(block.get("file") or "?")


def _short(sha: Any) -> str:
    return str(sha)[:12] if sha else "unknown"


def key(block: Mapping[str, Any] | None, kind: str) -> tuple[Any, ...] | None:
    """What identifies one component's code in a record's code block (None: unknown)."""
    if not isinstance(block, Mapping) or not isinstance(block.get(kind), Mapping):
        return None
    part = block[kind]
    return tuple(part.get(k) for k in COMPARED)
