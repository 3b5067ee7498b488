"""GLUE loaders (CoLA, MRPC, RTE, QNLI) from the standard GLUE TSV layout on disk.

Files looked for, in order: ``<data_dir>/glue/<TASK>/<split>.tsv`` then
``<data_dir>/<TASK>/<split>.tsv`` (``<TASK>`` as GLUE spells it: CoLA, MRPC, RTE, QNLI;
``split`` = train or dev). ``data_dir`` is the argument, else ``$HARNESS_DATA_DIR``.

Reading (see shared/data/README.md): quoting off (``csv.QUOTE_NONE``: bare ``"`` occur),
``utf-8-sig`` (MRPC starts with a BOM); CoLA has no header (source, label, original mark,
sentence); MRPC has ``Quality, #1 ID, #2 ID, #1 String, #2 String``; RTE ``index,
sentence1, sentence2, label``; QNLI ``index, question, sentence, label``.

Labels follow the Hugging Face ``glue`` dataset (so the files and the hub fallback agree):
CoLA 0 = unacceptable, 1 = acceptable; MRPC 0 = not_equivalent, 1 = equivalent (the
positive class of F1); RTE and QNLI 0 = entailment, 1 = not_entailment.

When the files are absent, ``datasets.load_dataset("nyu-mll/glue", name)`` is tried
(online only; set ``hub=False`` or ``HF_HUB_OFFLINE=1`` to skip it); when that fails too,
``GlueDataMissing`` says which files were looked for and how to get them.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from harness.data.location import DATA_DIR_ENV, data_root
from harness.data.text import read_text
from harness.errors import DataError, DataMissingError

TASK_DIRS = {"cola": "CoLA", "mrpc": "MRPC", "rte": "RTE", "qnli": "QNLI"}
SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "validation": "dev.tsv"}
LABEL_NAMES = {
    "cola": ("unacceptable", "acceptable"),
    "mrpc": ("not_equivalent", "equivalent"),
    "rte": ("entailment", "not_entailment"),
    "qnli": ("entailment", "not_entailment"),
}
PAIR_TASKS = frozenset({"mrpc", "rte", "qnli"})
# (text_a column, text_b column, label column) by header name; CoLA by position.
_COLUMNS = {
    "mrpc": ("#1 String", "#2 String", "Quality"),
    "rte": ("sentence1", "sentence2", "label"),
    "qnli": ("question", "sentence", "label"),
}
_HUB_COLUMNS = {
    "cola": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "rte": ("sentence1", "sentence2"),
    "qnli": ("question", "sentence"),
}


class GlueDataMissing(DataMissingError):
    """Neither the GLUE files nor the hub fallback could be read."""


@dataclass(frozen=True)
class GlueSplit:
    """One split of a GLUE task: ``text_a`` (and ``text_b`` for pair tasks), int labels."""

    task: str
    split: str
    text_a: list[str]
    text_b: list[str] | None
    labels: np.ndarray  # (n,) int64
    label_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.text_a)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def select(self, indices: np.ndarray) -> GlueSplit:
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            text_a=[self.text_a[i] for i in idx],
            text_b=None if self.text_b is None else [self.text_b[i] for i in idx],
            labels=self.labels[idx],
        )


def _task_key(task: str) -> str:
    key = task.lower()
    if key not in TASK_DIRS:
        raise ValueError(f"unknown GLUE task {task!r}; known: {sorted(TASK_DIRS)}")
    return key


def candidate_files(task: str, split: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The paths looked for, in order."""
    key = _task_key(task)
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; known: train, dev (alias validation)")
    base = data_root(data_dir) or Path(".")
    name = SPLIT_FILES[split]
    return [base / "glue" / TASK_DIRS[key] / name, base / TASK_DIRS[key] / name]


def _rows(path: Path) -> list[list[str]]:
    """The TSV rows of ``path`` (checked UTF-8 text, BOM dropped, quoting off)."""
    text = read_text(path, "GLUE file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    return [row for row in reader if row]


def read_tsv(task: str, path: Path, split: str = "train") -> GlueSplit:
    """Read one GLUE TSV file (see the module docstring for the layouts)."""
    key = _task_key(task)
    rows = _rows(path)
    names = LABEL_NAMES[key]
    if key == "cola":
        bad = [i + 1 for i, r in enumerate(rows) if len(r) != 4]
        if bad:
            raise DataError(f"{path}: expected 4 columns (no header) at lines {bad[:5]}")
        return GlueSplit(key, split, [r[3] for r in rows], None,
                         _int_labels(path, [r[1] for r in rows], 1), names, str(path))
    header, body = rows[0], rows[1:]
    if not body:
        raise DataError(f"{path}: a header and no examples")
    col_a, col_b, col_y = _COLUMNS[key]
    missing = [c for c in (col_a, col_b, col_y) if c not in header]
    if missing:
        raise DataError(f"{path}: header {header} lacks columns {missing}")
    ia, ib, iy = header.index(col_a), header.index(col_b), header.index(col_y)
    bad = [i + 2 for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise DataError(f"{path}: expected {len(header)} columns at lines {bad[:5]}")
    if key == "mrpc":
        labels = list(_int_labels(path, [r[iy] for r in body], 2))
    else:
        lookup = {n: i for i, n in enumerate(names)}
        unknown = {r[iy] for r in body} - set(lookup)
        if unknown:
            raise DataError(f"{path}: unknown labels {sorted(unknown)[:5]}; expected {names}")
        labels = [lookup[r[iy]] for r in body]
    return GlueSplit(key, split, [r[ia] for r in body], [r[ib] for r in body],
                     np.array(labels, dtype=np.int64), names, str(path))


def _int_labels(path: Path, values: list[str], first_line: int) -> np.ndarray:
    """Integer labels (0/1), or a DataError naming the file and line."""
    for i, value in enumerate(values):
        if value not in ("0", "1"):
            raise DataError(f"{path}: label {value!r} at line {first_line + i} is not 0 or 1")
    return np.array([int(v) for v in values], dtype=np.int64)


def datasets_installed() -> bool:
    return importlib.util.find_spec("datasets") is not None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick connect to the hub (datasets itself retries for ~25 s when offline)."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(key: str, split: str) -> GlueSplit:
    import datasets  # optional dependency (the `glue` extra)

    hub_split = "validation" if split in ("dev", "validation") else split
    ds = datasets.load_dataset("nyu-mll/glue", key, split=hub_split)
    col_a, col_b = _HUB_COLUMNS[key]
    return GlueSplit(
        key, split, list(ds[col_a]), None if col_b is None else list(ds[col_b]),
        np.asarray(ds["label"], dtype=np.int64), LABEL_NAMES[key], f"hub:nyu-mll/glue/{key}",
    )


def load_glue(task: str, split: str = "train", data_dir: str | os.PathLike | None = None,
              hub: bool = True) -> GlueSplit:
    """Load a GLUE split from disk, else from the Hugging Face hub, else raise
    ``GlueDataMissing`` (one line: what was looked for and how to get it)."""
    key = _task_key(task)
    paths = candidate_files(key, split, data_dir)
    for path in paths:
        if path.is_file():
            return read_tsv(key, path, split)
    reason = "hub fallback disabled"
    if hub and os.environ.get("HF_HUB_OFFLINE", "0") in ("", "0", "false", "False"):
        reason = "hub fallback: huggingface.co unreachable (offline)"
        if _hub_reachable():
            try:
                return _from_hub(key, split)
            except Exception as err:  # no `datasets`, hub errors: all mean "missing"
                first = str(err).splitlines()[0][:160] if str(err) else ""
                reason = f"hub fallback failed: {type(err).__name__}: {first}"
    online = ("go online so datasets.load_dataset('nyu-mll/glue', "
              f"'{key}') can fetch it" if datasets_installed() else
              "go online with `pip install datasets` so datasets.load_dataset("
              f"'nyu-mll/glue', '{key}') can fetch it")
    raise GlueDataMissing(
        f"GLUE {TASK_DIRS[key]} {split} not found: looked for "
        f"{' and '.join(str(p) for p in paths)} ({reason}); either put the GLUE TSVs there "
        f"(pass --data-dir, spec data_dir or ${DATA_DIR_ENV} pointing at the folder holding "
        f"glue/{TASK_DIRS[key]}/) or {online}"
    )


def subset_indices(n: int, size: int | float, seed: int) -> np.ndarray:
    """Indices of a deterministic training subset: ``size`` examples (an int >= 1, capped
    at n) or a fraction of n (a float in (0, 1]). Subsets of one seed are nested (the first
    ``size`` of one permutation), returned in file order."""
    if isinstance(size, bool) or size <= 0:
        raise ValueError(f"size must be a positive count or a fraction in (0, 1], got {size!r}")
    if isinstance(size, float) and size <= 1.0:
        count = max(1, int(round(size * n)))
    elif isinstance(size, float) and not size.is_integer():
        raise ValueError(f"a fractional size must be in (0, 1], got {size}")
    else:
        count = min(int(size), n)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:count])


def training_subset(data: GlueSplit, size: int | float, seed: int) -> GlueSplit:
    """``data`` restricted to ``subset_indices(len(data), size, seed)``."""
    return data.select(subset_indices(len(data), size, seed))


def local_file(task: str, split: str, data_dir: str | os.PathLike | None) -> Path | None:
    """The first GLUE TSV of ``candidate_files`` that exists, or None."""
    return next((p for p in candidate_files(task, split, data_dir) if p.is_file()), None)


def hub_source(task: str, split: str) -> str:
    """The name under which a hub split is recorded (no local file to fingerprint)."""
    return f"hub:nyu-mll/glue/{_task_key(task)}/{split}"


def check_source(task: str, split: str, where: Path | str,
                 data_dir: str | os.PathLike | None) -> None:
    """Validate one GLUE split before compute: a local TSV is read and parsed; a hub split
    is loaded (online it is then cached by `datasets`; offline this raises the one-line
    GlueDataMissing, before any training)."""
    if isinstance(where, Path):
        read_tsv(task, where, split)
    else:
        load_glue(task, split, data_dir)
