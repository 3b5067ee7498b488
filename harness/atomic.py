"""Safe file writes: atomic (a temp file in the same directory, fsync, os.replace, so a
kill at any moment leaves either the old or the new file, never a torn one) and never
through a symbolic link harness did not make.

A results folder is shared with its user: a ``report.md`` or ``journal.jsonl`` there made
into a link to a user's file must not get that file overwritten or appended to. So every
write here refuses a destination that is a symbolic link (``LinkRefused``, one line
naming it), appends open with ``O_NOFOLLOW``, and temp files are created with
``O_EXCL`` (which never follows a link). ``os.replace`` replaces a link itself, never its
target, so a link planted between the check and the rename is harmless too.

Temp files are named ``.<name>.h<host>p<pid>.<random>.tmp``, so that a run cleaning up
after a killed one removes only temp files whose writer is gone (``stale_temp``), never
those another live run is writing at that moment.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from harness.errors import HarnessError


class LinkRefused(HarnessError, OSError):
    """harness will not write through a symbolic link it did not make (an OSError too,
    so that best-effort writes, such as a cache's, skip it as they skip any failed
    write)."""


def _file_mode() -> int:
    """0o666 less the umask: what open() would give (mkstemp makes 0o600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMP_NAME = re.compile(r"\.h(?P<host>[0-9a-f]{8})p(?P<pid>\d+)\.[^.]*\.tmp$")


def link_problem(path: Path) -> str | None:
    """One line when ``path`` is a symbolic link (else None)."""
    if not path.is_symlink():
        return None
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return (f"{path}: is a symbolic link (to {target}) that harness did not make; "
            "refusing to write through it (remove the link and run again)")


def refuse_link(path: Path) -> None:
    """Raise LinkRefused when ``path`` is a symbolic link."""
    problem = link_problem(path)
    if problem is not None:
        raise LinkRefused(problem)


def temp_prefix(name: str) -> str:
    """The start of a temp file's name for ``name``: it names this host and process."""
    return f".{name}.h{_HOST}p{os.getpid()}."


def stale_temp(path: Path, older_than_s: float) -> bool:
    """Whether temp file ``path`` (see the module docstring) may be removed: its writer
    is a process of this host that is gone, or it is older than ``older_than_s`` (a
    writer replaces its temp file within moments; one silent that long is treated as
    gone, as claims are). A temp file of a live writer is never stale."""
    from harness.runner.claims import pid_alive

    match = _TEMP_NAME.search(path.name)
    if match and match["host"] == _HOST and not pid_alive(int(match["pid"])):
        return True
    try:
        return time.time() - path.lstat().st_mtime > older_than_s
    except OSError:
        return False


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a partial file; refuse a
    symbolic link at ``path``."""
    refuse_link(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def append_no_follow(path: Path, data: bytes) -> None:
    """Append ``data`` in one write (O_APPEND: lines of concurrent writers never
    interleave), creating ``path``; LinkRefused when it is a symbolic link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | NOFOLLOW, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            refuse_link(path)
        raise
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@contextlib.contextmanager
def fresh_file(path: Path) -> Iterator[IO[bytes]]:
    """A new file at ``path`` open for writing (binary), never through a link: whatever
    was there (a leftover of a killed run, or a link) is removed first, and the file is
    created with O_EXCL. For harness's own temp files, renamed into place afterwards."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        yield handle


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    if sys.platform.startswith("win"):
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
