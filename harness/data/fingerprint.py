"""Content fingerprints of data files (size and sha256), cached by path, size and mtime.

A cell's id includes the sha256 of every file its task reads, so changed data means new
cells. Hashing is cached in ``<cache>/fingerprints.json`` (``$HARNESS_CACHE_DIR``, else
``$XDG_CACHE_HOME/harness``, else ``~/.cache/harness``) keyed by the resolved path, the
size and the modification time in nanoseconds, so a rerun does not rehash large files; a
file whose size or mtime changed is hashed again. The cache is only an accelerator: when
it cannot be read or written, files are simply hashed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CACHE_ENV = "HARNESS_CACHE_DIR"
_CHUNK = 1 << 20
_cache: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Fingerprint:
    """What identifies one data file: where it was read, its size and its sha256."""

    path: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "harness"


def _cache_path() -> Path:
    return cache_dir() / "fingerprints.json"


def _load_cache() -> dict[str, dict[str, Any]]:
    global _cache
    if _cache is None:
        try:
            from harness.jsonfile import read_json

            data = read_json(_cache_path())
            _cache = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            _cache = {}
    return _cache


def _save_cache(cache: dict[str, dict[str, Any]]) -> None:
    from harness.atomic import atomic_write_json

    try:
        atomic_write_json(_cache_path(), cache)
    except OSError:
        pass  # a read-only home: hash again next time


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: Path) -> Fingerprint:
    """The file's fingerprint, from the cache when its size and mtime are unchanged."""
    resolved = path.resolve()
    stat = resolved.stat()
    cache = _load_cache()
    key = str(resolved)
    hit = cache.get(key)
    if hit and hit.get("size") == stat.st_size and hit.get("mtime_ns") == stat.st_mtime_ns:
        return Fingerprint(key, stat.st_size, str(hit["sha256"]))
    sha = sha256_file(resolved)
    after = resolved.stat()
    if (after.st_size, after.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
        _save_cache(cache)
    return Fingerprint(key, stat.st_size, sha)
