"""Reading YAML files that a user wrote (specs, reported numbers) without surprises.

Every problem is one line naming the file: missing, a directory, over the size cap, not
UTF-8, invalid YAML (with line and column), or a document that expands to more nodes than
any spec has (a "billion laughs" alias bomb). Loading is ``yaml.safe_load`` semantics:
specs are data, never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError

MAX_BYTES = 1 << 20  # 1 MiB: the largest shipped spec is about 3 KB
MAX_NODES = 100_000  # after alias expansion


class YamlFileError(HarnessError):
    """A YAML file could not be read; the message is one line naming it."""


def _expanded_nodes(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """How many nodes the document has once aliases are expanded, without expanding them
    (an alias is the same node object, counted once per reference via ``memo``)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_nodes(child, memo, limit)
        if total > limit:
            break
    memo[key] = total
    return total


def read_yaml_file(path: str | Path, what: str = "file") -> Any:
    """The YAML document in ``path`` as plain data; YamlFileError (one line) otherwise."""
    path = Path(path)
    if path.is_dir():
        raise YamlFileError(f"{path}: is a directory, not a {what}")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise YamlFileError(f"{path}: {size:,} bytes: too large for a {what} "
                                f"(at most {MAX_BYTES:,})")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise YamlFileError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise YamlFileError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise YamlFileError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line "
                            f"{line}); a {what} must be UTF-8 YAML") from None
    if "\0" in text:
        raise YamlFileError(f"{path}: holds a NUL byte: not a text file")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_nodes(node, {}, MAX_NODES) > MAX_NODES:
            raise YamlFileError(f"{path}: expands to more than {MAX_NODES:,} YAML nodes "
                                "through aliases (an alias bomb?); refused")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlFileError(f"{path}: {where}invalid YAML: {problem}") from None
    except RecursionError:
        raise YamlFileError(f"{path}: nested too deeply to be a {what}") from None
