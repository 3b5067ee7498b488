"""Reading JSON files that anyone may have edited: whatever is in them, the reader gets a
value or a ValueError with one line, never a RecursionError (a document nested 200,000
levels deep) or a UnicodeDecodeError traceback (a stray non-UTF-8 byte)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonFileError(ValueError):
    """A JSON file that cannot be read as JSON; the message is one line."""


def loads(text: str | bytes) -> Any:
    """json.loads whose every failure is a JsonFileError (one line)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonFileError("nested too deeply to be a harness file") from None
    except UnicodeDecodeError as exc:
        raise JsonFileError(f"not UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise JsonFileError(" ".join(str(exc).split())[:200]) from None


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; OSError when it cannot be read (FileNotFoundError,
    IsADirectoryError), JsonFileError when it is not JSON."""
    return loads(Path(path).read_bytes())


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file, skipping lines that are not one (a torn last
    line, a stray non-UTF-8 byte); nothing when the file cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return
    for raw in data.splitlines():
        try:
            entry = loads(raw)
        except JsonFileError:
            continue
        if isinstance(entry, dict):
            yield entry
