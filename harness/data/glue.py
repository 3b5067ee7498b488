"""GLUE loaders for every task (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI) from
the GLUE TSV layout on disk, or the Hugging Face hub dataset ``nyu-mll/glue`` when online.

Files looked for, in order: ``<data_dir>/glue/<TASK>/<split>.tsv`` then
``<data_dir>/<TASK>/<split>.tsv`` (``<TASK>`` as GLUE spells its folders: CoLA, SST-2, MRPC,
STS-B, QQP, MNLI, QNLI, RTE, WNLI). Splits: ``train`` and ``dev`` (alias ``validation``);
MNLI has no ``dev`` but ``dev_matched`` and ``dev_mismatched`` (``EVAL_SPLITS``). The data
folder is the argument, else ``$HARNESS_DATA_DIR`` (``harness.data.location``); with
neither, no local file is looked for.

Reading (see shared/data/README.md): quoting off (``csv.QUOTE_NONE``: bare ``"`` occur),
a UTF-8 BOM dropped (MRPC starts with one), every row checked to have the header's number
of columns. The layouts, as GLUE ships them (``LAYOUTS``):

- CoLA: no header; source, label (0/1), original mark, sentence.
- SST-2: ``sentence, label`` (0/1).
- MRPC: ``Quality, #1 ID, #2 ID, #1 String, #2 String`` (Quality 0/1).
- STS-B: ``index, genre, filename, year, old_index, source1, source2, sentence1, sentence2,
  score`` (a similarity score from 0 to 5: regression).
- QQP: ``id, qid1, qid2, question1, question2, is_duplicate`` (0/1).
- MNLI: ``index, promptID, pairID, genre, sentence1_binary_parse, sentence2_binary_parse,
  sentence1_parse, sentence2_parse, sentence1, sentence2, label1, [label2 .. label5,]
  gold_label`` (12 columns in train.tsv, 16 in the dev files; gold_label entailment /
  neutral / contradiction).
- QNLI: ``index, question, sentence, label``; RTE: ``index, sentence1, sentence2, label``
  (label entailment / not_entailment); WNLI: ``index, sentence1, sentence2, label`` (0/1).

Labels follow the Hugging Face ``glue`` dataset (so the files and the hub fallback agree):
CoLA 0 = unacceptable, 1 = acceptable; SST-2 0 = negative, 1 = positive; MRPC 0 =
not_equivalent, 1 = equivalent (the positive class of F1); QQP 0 = not_duplicate, 1 =
duplicate; MNLI 0 = entailment, 1 = neutral, 2 = contradiction; QNLI and RTE 0 =
entailment, 1 = not_entailment; WNLI 0 = not_entailment, 1 = entailment; STS-B the float
score.

When the files are absent, ``datasets.load_dataset("nyu-mll/glue", name)`` is tried
(online; ``HF_HUB_OFFLINE=1`` or ``hub=False`` skips it); when
that fails too, ``GlueDataMissing`` says which files were looked for, why the hub could not
serve them, and what would (``harness.data.hub``: installing ``datasets`` is suggested only
when it is not installed).
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.data import hub
from harness.data.hub import datasets_installed  # noqa: F401 - re-exported
from harness.data.location import DATA_DIR_ENV, data_root
from harness.data.text import read_text
from harness.errors import DataError, DataMissingError


class LabelSpace:
    """What ``label_names`` implies: () is a regression task (one output, a score)."""

    label_names: tuple[str, ...]

    @property
    def regression(self) -> bool:
        return not self.label_names

    @property
    def num_labels(self) -> int:
        """Outputs of the task head: the classes, or 1 for a regression task."""
        return 1 if self.regression else len(self.label_names)


@dataclass(frozen=True)
class Layout(LabelSpace):
    """How one GLUE task's TSV files and hub dataset are laid out."""

    folder: str  # GLUE's folder name
    text_a: str | int  # header name, or column index for a headerless file (CoLA)
    text_b: str | int | None
    label: str | int
    label_names: tuple[str, ...]  # () = regression (a float score)
    int_labels: bool  # labels written as 0/1 in the TSV (else as label names)
    hub_columns: tuple[str, str | None]
    eval_splits: tuple[str, ...] = ("dev",)
    columns: int | None = None  # headerless files: the number of columns
    score_range: tuple[float, float] | None = None  # regression: the valid score range

    @property
    def header(self) -> bool:
        return self.columns is None


LAYOUTS: dict[str, Layout] = {
    "cola": Layout("CoLA", 3, None, 1, ("unacceptable", "acceptable"), True,
                   ("sentence", None), columns=4),
    "sst2": Layout("SST-2", "sentence", None, "label", ("negative", "positive"), True,
                   ("sentence", None)),
    "mrpc": Layout("MRPC", "#1 String", "#2 String", "Quality",
                   ("not_equivalent", "equivalent"), True, ("sentence1", "sentence2")),
    "stsb": Layout("STS-B", "sentence1", "sentence2", "score", (), False,
                   ("sentence1", "sentence2"), score_range=(0.0, 5.0)),
    "qqp": Layout("QQP", "question1", "question2", "is_duplicate",
                  ("not_duplicate", "duplicate"), True, ("question1", "question2")),
    "mnli": Layout("MNLI", "sentence1", "sentence2", "gold_label",
                   ("entailment", "neutral", "contradiction"), False,
                   ("premise", "hypothesis"), eval_splits=("dev_matched", "dev_mismatched")),
    "qnli": Layout("QNLI", "question", "sentence", "label", ("entailment", "not_entailment"),
                   False, ("question", "sentence")),
    "rte": Layout("RTE", "sentence1", "sentence2", "label", ("entailment", "not_entailment"),
                  False, ("sentence1", "sentence2")),
    "wnli": Layout("WNLI", "sentence1", "sentence2", "label", ("not_entailment", "entailment"),
                   True, ("sentence1", "sentence2")),
}
"""Every GLUE task, by the Hugging Face config name (cola, sst2, ..., wnli)."""

TASK_DIRS = {key: layout.folder for key, layout in LAYOUTS.items()}
LABEL_NAMES = {key: layout.label_names for key, layout in LAYOUTS.items()}
PAIR_TASKS = frozenset(key for key, layout in LAYOUTS.items() if layout.text_b is not None)
REGRESSION_TASKS = frozenset(key for key, layout in LAYOUTS.items() if layout.regression)
SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "validation": "dev.tsv",
               "dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"}
HUB_SPLITS = {"train": "train", "dev": "validation", "validation": "validation",
              "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"}


class GlueDataMissing(DataMissingError):
    """Neither the GLUE files nor the hub fallback could be read."""


@dataclass(frozen=True)
class GlueSplit(LabelSpace):
    """One split of a GLUE task: ``text_a`` (and ``text_b`` for pair tasks), labels (int64
    class ids, or float64 scores for the regression task STS-B)."""

    task: str
    split: str
    text_a: list[str]
    text_b: list[str] | None
    labels: np.ndarray  # (n,) int64, or float64 for regression
    label_names: tuple[str, ...]  # () for regression
    source: str

    def __len__(self) -> int:
        return len(self.text_a)

    def select(self, indices: np.ndarray) -> GlueSplit:
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            text_a=[self.text_a[i] for i in idx],
            text_b=None if self.text_b is None else [self.text_b[i] for i in idx],
            labels=self.labels[idx],
        )


def _task_key(task: str) -> str:
    key = task.lower().replace("-", "")
    if key not in LAYOUTS:
        raise ValueError(f"unknown GLUE task {task!r}; known: {', '.join(LAYOUTS)}")
    return key


def layout(task: str) -> Layout:
    return LAYOUTS[_task_key(task)]


def num_labels(task: str) -> int:
    """Outputs of the task head: 1 for STS-B (regression), 3 for MNLI, else 2."""
    return layout(task).num_labels


def eval_splits(task: str) -> tuple[str, ...]:
    """The labelled evaluation splits: ("dev",), or MNLI's matched and mismatched."""
    return layout(task).eval_splits


def _check_split(key: str, split: str) -> None:
    allowed = ("train", *LAYOUTS[key].eval_splits)
    if split == "validation" and "dev" in allowed:
        return
    if split not in allowed:
        raise ValueError(f"GLUE {TASK_DIRS[key]} has no split {split!r}; its splits: "
                         f"{', '.join(allowed)}")


def candidate_files(task: str, split: str, data_dir: str | os.PathLike | None = None
                    ) -> list[Path]:
    """The paths looked for, in order ([] when no data folder is given)."""
    key = _task_key(task)
    _check_split(key, split)
    base = data_root(data_dir)
    if base is None:
        return []
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
    spec = LAYOUTS[key]
    rows = _rows(path)
    if spec.header:
        header, body, first_line = rows[0], rows[1:], 2
        if not body:
            raise DataError(f"{path}: a header and no examples")
        wanted = [c for c in (spec.text_a, spec.text_b, spec.label) if c is not None]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataError(f"{path}: header {header} lacks columns {missing} (the GLUE "
                            f"{spec.folder} layout)")
        width = len(header)
        column = header.index
    else:
        body, first_line, width = rows, 1, spec.columns

        def column(c: str | int) -> int:
            return int(c)
    bad = [i + first_line for i, r in enumerate(body) if len(r) != width]
    if bad:
        raise DataError(f"{path}: expected {width} columns at lines {bad[:5]}")
    ia, iy = column(spec.text_a), column(spec.label)
    ib = None if spec.text_b is None else column(spec.text_b)
    values = [r[iy] for r in body]
    if spec.regression:
        labels = _scores(path, values, first_line, spec.score_range)
    elif spec.int_labels:
        labels = _int_labels(path, values, first_line, spec.num_labels)
    else:
        labels = _named_labels(path, values, first_line, spec.label_names)
    return GlueSplit(key, split, [r[ia] for r in body],
                     None if ib is None else [r[ib] for r in body], labels, spec.label_names,
                     str(path))


def _int_labels(path: Path, values: list[str], first_line: int, classes: int) -> np.ndarray:
    """Integer labels 0 .. classes - 1, or a DataError naming the file and line."""
    allowed = {str(i) for i in range(classes)}
    for i, value in enumerate(values):
        if value not in allowed:
            raise DataError(f"{path}: label {value!r} at line {first_line + i} is not "
                            f"{' or '.join(sorted(allowed))}")
    return np.array([int(v) for v in values], dtype=np.int64)


def _named_labels(path: Path, values: list[str], first_line: int,
                  names: tuple[str, ...]) -> np.ndarray:
    lookup = {n: i for i, n in enumerate(names)}
    for i, value in enumerate(values):
        if value not in lookup:
            raise DataError(f"{path}: unknown label {value!r} at line {first_line + i}; "
                            f"expected one of {names}")
    return np.array([lookup[v] for v in values], dtype=np.int64)


def _scores(path: Path, values: list[str], first_line: int,
            bounds: tuple[float, float] | None) -> np.ndarray:
    """Float scores (STS-B: 0 to 5), or a DataError naming the file and line."""
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        try:
            out[i] = float(value)
        except ValueError:
            out[i] = math.nan
        low, high = bounds if bounds is not None else (-math.inf, math.inf)
        if not (math.isfinite(out[i]) and low <= out[i] <= high):
            raise DataError(f"{path}: score {value!r} at line {first_line + i} is not a "
                            f"number from {low:g} to {high:g}")
    return out


def _from_hub(key: str, split: str) -> GlueSplit:
    import datasets  # optional dependency (the `glue` extra)

    ds = datasets.load_dataset("nyu-mll/glue", key, split=HUB_SPLITS[split])
    col_a, col_b = LAYOUTS[key].hub_columns
    dtype = np.float64 if key in REGRESSION_TASKS else np.int64
    return GlueSplit(
        key, split, list(ds[col_a]), None if col_b is None else list(ds[col_b]),
        np.asarray(ds["label"], dtype=dtype), LABEL_NAMES[key],
        f"hub:nyu-mll/glue/{key}/{HUB_SPLITS[split]}",
    )


def load_glue(task: str, split: str = "train", data_dir: str | os.PathLike | None = None,
              hub: bool = True) -> GlueSplit:
    """Load a GLUE split from disk, else from the Hugging Face hub, else raise
    ``GlueDataMissing`` (one line: what was looked for, why the hub did not serve it, and
    how to get it)."""
    key = _task_key(task)
    paths = candidate_files(key, split, data_dir)
    for path in paths:
        if path.is_file():
            return read_tsv(key, path, split)
    return _hub_or_missing(key, split, paths, hub)


def _hub_or_missing(key: str, split: str, paths: list[Path], use_hub: bool) -> GlueSplit:
    call = f"datasets.load_dataset('nyu-mll/glue', '{key}')"
    reason = "hub fallback disabled"
    if use_hub:
        found, reason = hub.attempt(lambda: _from_hub(key, split))
        if found is not None:
            return found
    online = f" or {hub.advice(call, reason)}"
    looked = (f"looked for {' and '.join(str(p) for p in paths)}" if paths
              else "no data directory given")
    raise GlueDataMissing(
        f"GLUE {TASK_DIRS[key]} {split} not found: {looked} ({reason}); put the GLUE TSVs "
        f"there (pass --data-dir, spec data_dir or ${DATA_DIR_ENV} pointing at the folder "
        f"holding glue/{TASK_DIRS[key]}/){online}"
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
    key = _task_key(task)
    _check_split(key, split)
    return f"hub:nyu-mll/glue/{key}/{split}"


def training_examples(task: str, where: Path | str) -> int:
    """How many examples the training split ``where`` (a TSV, or a hub source) holds."""
    if isinstance(where, Path):
        return len(read_tsv(task, where, "train"))
    return len(load_glue(task, "train", None))


def check_source(task: str, split: str, where: Path | str,
                 data_dir: str | os.PathLike | None) -> None:
    """Validate one GLUE split before compute: a local TSV is read and parsed; a hub split
    is loaded (online it is then cached by `datasets`; offline this raises the one-line
    GlueDataMissing, before any training)."""
    if isinstance(where, Path):
        read_tsv(task, where, split)
    else:
        load_glue(task, split, data_dir)
