"""Reading a data file as text, checked up front: every problem is one line naming the file.

Loaders call ``read_text`` instead of ``Path.read_text`` so that an empty file, a binary
file, a Latin-1 file or a stray UTF-8 byte-order mark is reported (or handled) before any
training, never as a bare ``UnicodeDecodeError`` or as a token made of a BOM.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import DataError, DataMissingError

BOM = b"\xef\xbb\xbf"


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def read_text(path: Path, what: str = "data file") -> str:
    """The UTF-8 text of ``path`` with a leading BOM removed; DataError when the file is
    missing, unreadable, empty (or blank), holds a NUL byte or is not UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataMissingError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: {what} is a directory, not a file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    if not raw.strip():
        raise DataError(f"{path}: {what} is empty")
    nul = raw.find(b"\0")
    if nul >= 0:
        raise DataError(f"{path}: {what} holds a NUL byte (line {_line_of(raw, nul)}): "
                        "not a text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start]
        raise DataError(f"{path}: {what} is not UTF-8 text (byte 0x{byte:02x} at line "
                        f"{_line_of(raw, exc.start)}); convert it, e.g. `iconv -f latin1 "
                        f"-t utf-8`") from None
