"""The data a spec's cells read: resolved once, fingerprinted, checked before compute.

Each task's params declare the files a cell reads (``TaskParams.data_files``); their
sha256 goes into the cell id (so changed data means new cells, and the same bytes in
another folder are the same cells), and their paths, sizes and hashes into the record.
``check`` runs the task's own validation of those files (``TaskParams.check_data``) once
per distinct task params, before any training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.data.fingerprint import Fingerprint, fingerprint
from harness.data.location import data_root
from harness.errors import DataError, DataMissingError


class CellData:
    """The data of one sweep, given its resolved data folder (None: none given)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._files: dict[str, dict[str, Path | str]] = {}
        self._prints: dict[Path, Fingerprint] = {}
        self._checked: set[str] = set()

    @classmethod
    def for_spec(cls, spec: Any, cli: str | None = None) -> CellData:
        """--data-dir, then the spec's data_dir (a relative one taken from the spec's
        project folder, harness.spec.paths), then $HARNESS_DATA_DIR."""
        from harness.spec.paths import resolve

        return cls(data_root(cli, resolve(spec, spec.data_dir)))

    @property
    def data_dir(self) -> str | None:
        return None if self.root is None else str(self.root)

    @staticmethod
    def _key(params: Any) -> str:
        return json.dumps(params.model_dump(mode="json"), sort_keys=True)

    def files(self, params: Any) -> dict[str, Path | str]:
        """{role: local path, or the name of a remote source} (DataError when missing)."""
        key = self._key(params)
        if key not in self._files:
            self._files[key] = dict(params.data_files(self.root))
        return self._files[key]

    def _print(self, path: Path) -> Fingerprint:
        if path not in self._prints:
            try:
                self._prints[path] = fingerprint(path)
            except FileNotFoundError:
                raise DataMissingError(f"{path}: data file not found") from None
            except OSError as exc:
                raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
        return self._prints[path]

    def identity(self, params: Any) -> dict[str, str]:
        """What goes into the cell id: {role: sha256 (or the remote source's name)}."""
        return {role: f"source:{where}" if isinstance(where, str) else self._print(where).sha256
                for role, where in sorted(self.files(params).items())}

    def record(self, params: Any) -> dict[str, dict[str, Any]]:
        """What goes into the record: {role: {path, size, sha256} or {source}}."""
        return {role: {"source": where} if isinstance(where, str)
                else self._print(where).as_dict()
                for role, where in sorted(self.files(params).items())}

    def check(self, params: Any, sizes: list[int]) -> None:
        """The task's validation of its files and of the sizes they allow, once per
        distinct params and sizes."""
        key = self._key(params) + repr(sorted(sizes))
        if key not in self._checked:
            files = self.files(params)
            params.check_data(files, sorted(sizes))
            check_sizes(params.size_limits(files), sizes)
            self._checked.add(key)

    def changed(self, recorded: dict[str, dict[str, Any]]) -> str | None:
        """The first recorded file whose content changed since (None: all unchanged)."""
        for entry in recorded.values():
            if "path" in entry:
                path = Path(entry["path"])
                try:
                    now = fingerprint(path).sha256
                except OSError:
                    return f"{path} is gone"
                if now != entry["sha256"]:
                    return f"{path} changed"
        return None


def check_sizes(limits: list[Any], sizes: list[int]) -> None:
    """DataError (one line naming the sizes, the file and its length) when a size is
    larger than the data allows (``TaskParams.size_limits``)."""
    for limit in limits:
        over = sorted(s for s in set(sizes) if s > limit.count)
        if over:
            names = ", ".join(str(s) for s in over)
            raise DataError(f"sizes: {names} {'is' if len(over) == 1 else 'are'} more than "
                            f"{limit.file} holds ({limit.count} {limit.unit}); a size is "
                            f"that many {limit.unit}: use sizes of at most {limit.count}")
