"""Folders harness made, and only those, are written into or cleared.

A folder harness creates gets a marker file (``.harness``). Before writing into a folder
the runner calls ``claim_folder``: a missing or empty folder is created and marked; a
marked one is used; an unmarked one is adopted only when everything in it is something
harness writes there (a results folder from before markers existed); anything else is
refused with one line, so ``output_dir: /`` or a user's own folder is never written into.
``clear_folder`` (``--fresh``) removes only the names harness writes, from a marked
folder, and keeps (and names) anything else.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from collections.abc import Collection, Iterable
from pathlib import Path

from harness.atomic import atomic_write_text
from harness.errors import HarnessError

MARKER = ".harness"
TEMP_PATTERNS = (".*.tmp",)


class FolderRefused(HarnessError):
    """harness will not write into (or clear) a folder it did not make."""


def is_marked(path: Path) -> bool:
    return (path / MARKER).is_file()


def _known(name: str, known: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in (*known, *TEMP_PATTERNS))


def _mark(path: Path, kind: str) -> None:
    atomic_write_text(path / MARKER, json.dumps({"made_by": "harness", "kind": kind}) + "\n")


def claim_folder(path: Path, kind: str, known: Iterable[str],
                 adopt_if: Iterable[Path] = ()) -> None:
    """Make sure harness may write into ``path`` (see the module docstring). ``known``:
    the name patterns harness writes there; ``adopt_if``: entries that are themselves
    harness folders (they are accepted as known)."""
    known = tuple(known)
    if path.exists() and not path.is_dir():
        raise FolderRefused(f"{path}: exists and is not a folder; choose another {kind}")
    if is_marked(path):
        return
    if path.is_dir():
        harness_dirs = {p.name for p in adopt_if}
        foreign = sorted(p.name for p in path.iterdir()
                         if not _known(p.name, known) and p.name not in harness_dirs)
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:3])
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise FolderRefused(
                f"{path}: refusing to write into a folder harness did not make (it holds "
                f"{shown}{more}); choose another {kind}, or if harness did make it, "
                f"`touch {path / MARKER}`")
    path.mkdir(parents=True, exist_ok=True)
    _mark(path, kind)


def _stale_temp(path: Path) -> bool:
    from harness.atomic import stale_temp
    from harness.runner.claims import claim_timeout

    return stale_temp(path, claim_timeout())


Layout = dict[str, "Layout | None"]
"""What harness writes in a folder: name pattern -> None (the whole entry is harness's)
or the layout of what it writes inside that subfolder."""


def clear_folder(path: Path, layout: Layout, keep: Iterable[str] = ()) -> list[str]:
    """Remove what ``layout`` says harness wrote in marked folder ``path`` (the marker
    and the top-level entries named in ``keep`` stay); return the paths (relative to
    ``path``) kept because harness did not make them."""
    if not path.exists():
        return []
    if not is_marked(path):
        raise FolderRefused(f"{path}: not made by harness (no {MARKER} marker): refusing to "
                            "clear it")
    kept = _clear(path, {k: v for k, v in layout.items() if k not in set(keep)}, Path(),
                  set(keep))
    (path / MARKER).touch()
    return kept


def _clear(folder: Path, layout: Layout, relative: Path, skip: Collection[str] = ()
           ) -> list[str]:
    kept: list[str] = []
    for entry in sorted(folder.iterdir()):
        if relative == Path() and (entry.name == MARKER or entry.name in skip):
            continue
        pattern = next((k for k in (*layout, *TEMP_PATTERNS)
                        if fnmatch.fnmatchcase(entry.name, k)), None)
        inner = layout.get(pattern) if pattern is not None else None
        if pattern is None:
            kept.append(str(relative / entry.name))
        elif pattern in TEMP_PATTERNS and not _stale_temp(entry):
            continue  # another live run is writing it at this moment
        elif inner is not None and entry.is_dir() and not entry.is_symlink():
            sub = _clear(entry, inner, relative / entry.name)
            kept += sub
            if not sub:
                entry.rmdir()
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return kept
