"""Which folder a spec's results (and relative data folder) are in: one rule, so that
``harness run``, ``status``, ``report`` and ``check`` agree from any working directory.

A relative ``output_dir`` (or ``data_dir``) of a spec file is taken from the spec's
project folder: the root of the git repository that holds the spec file (the nearest
folder at or above it with a ``.git``); outside a repository, the nearest such folder
with a ``pyproject.toml``; else the spec file's own folder. So ``harness run
specs/logistic.yaml`` from a clone's root writes ``results/logistic/`` there, as always
(and so do the example plugin's specs, though their folder has a pyproject.toml of its
own), and the same command from any other folder reads and writes that same folder. A
spec made in code (no file) keeps the old rule: relative to the current directory.
Absolute paths are used as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROJECT_MARKERS = (".git", "pyproject.toml")


def project_folder(spec_file: str | Path) -> tuple[Path, str]:
    """(the folder relative paths of ``spec_file`` are taken from, why that one)."""
    folder = Path(spec_file).resolve().parent
    for marker in PROJECT_MARKERS:  # the repository first, then a package's folder
        for candidate in (folder, *folder.parents):
            if (candidate / marker).exists():
                return candidate, f"the spec's project folder (it holds {marker})"
    return folder, f"the spec's folder (no {' or '.join(PROJECT_MARKERS)} above it)"


def spec_file(spec: Any) -> Path | None:
    """The file ``spec`` was loaded from (harness.spec.load_spec), None for one made in
    code."""
    return getattr(spec, "_spec_file", None)


def base_folder(spec: Any) -> tuple[Path, str]:
    """Where the spec's relative paths start, and why (one clause)."""
    source = spec_file(spec)
    if source is None:
        return Path.cwd(), "the current directory (the spec has no file)"
    return project_folder(source)


def resolve(spec: Any, value: str | None) -> Path | None:
    """A path field of the spec (``~`` expanded) made absolute by the rule above."""
    if value in (None, ""):
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base_folder(spec)[0] / path


def output_root(spec: Any) -> Path:
    """``<output_dir>``, absolute."""
    root = resolve(spec, spec.output_dir)
    assert root is not None  # output_dir has a default
    return root


def results_folder(spec: Any) -> Path:
    """``<output_dir>/<name>``, absolute: the spec's results folder."""
    return output_root(spec) / spec.name


def where(spec: Any) -> str:
    """One line: the results folder and why it is that one."""
    folder = results_folder(spec)
    if Path(str(spec.output_dir)).expanduser().is_absolute():
        return f"results {folder} (output_dir is absolute)"
    base, why = base_folder(spec)
    return (f"results {folder} (output_dir {spec.output_dir!r} is relative to {base}, "
            f"{why})")
