"""GLUE loaders on the real files (shared/data/glue) and the metrics."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.data.glue import (
    GlueDataMissing,
    candidate_files,
    load_glue,
    subset_indices,
    training_subset,
)
from harness.tasks.glue_bert.metrics import accuracy, confusion, f1, matthews, task_metrics

DATA = Path(__file__).parents[2] / "shared" / "data"
needs_glue = pytest.mark.skipif(not (DATA / "glue" / "CoLA" / "train.tsv").exists(),
                                reason="shared GLUE files absent")

COUNTS = {("cola", "train"): 8551, ("cola", "dev"): 1043, ("mrpc", "train"): 3668,
          ("mrpc", "dev"): 408, ("rte", "train"): 2490, ("rte", "dev"): 277}


@needs_glue
@pytest.mark.parametrize(("task", "split"), sorted(COUNTS))
def test_row_counts_and_labels(task, split):
    d = load_glue(task, split, DATA, hub=False)
    assert len(d) == len(d.labels) == COUNTS[(task, split)]
    assert set(np.unique(d.labels)) == {0, 1}
    assert d.labels.dtype == np.int64
    assert (d.text_b is None) == (task == "cola")
    if d.text_b is not None:
        assert len(d.text_b) == len(d)
    assert all(isinstance(t, str) and t for t in d.text_a)


# Label counts per class (0, 1), counted from the files' label columns with awk (not
# with the loader): CoLA column 2; MRPC "Quality"; RTE's last column, entailment = 0.
LABEL_COUNTS = {("cola", "train"): (2528, 6023), ("cola", "dev"): (322, 721),
                ("mrpc", "train"): (1194, 2474), ("mrpc", "dev"): (129, 279),
                ("rte", "train"): (1249, 1241), ("rte", "dev"): (146, 131)}


@needs_glue
@pytest.mark.parametrize(("task", "split"), sorted(LABEL_COUNTS))
def test_label_counts_hand_counted(task, split):
    d = load_glue(task, split, DATA, hub=False)
    assert tuple(np.bincount(d.labels, minlength=2).tolist()) == LABEL_COUNTS[(task, split)]


@needs_glue
def test_reading_details():
    # MRPC: the BOM is not part of the first header name; bare quotes survive QUOTE_NONE.
    mrpc = load_glue("mrpc", "train", DATA, hub=False)
    assert mrpc.text_a[0].startswith("Amrozi accused his brother , whom he called \" the")
    assert mrpc.labels[:2].tolist() == [1, 0]
    assert mrpc.label_names[1] == "equivalent"
    # A quote-aware reader would merge lines: same count only with quoting off.
    with (DATA / "glue" / "MRPC" / "train.tsv").open(encoding="utf-8-sig") as f:
        assert len(list(csv.reader(f, delimiter="\t"))) != 3669
    cola = load_glue("cola", "dev", DATA, hub=False)
    assert cola.text_a[0] == "The sailors rode the breeze clear of the rocks."
    # CoLA's dev label mean, hand-counted from column 2 of the file
    ones = sum(line.split("\t")[1] == "1"
               for line in (DATA / "glue" / "CoLA" / "dev.tsv").read_text().splitlines())
    assert int(cola.labels.sum()) == ones == 721
    rte = load_glue("rte", "train", DATA, hub=False)
    assert rte.label_names == ("entailment", "not_entailment")
    assert rte.labels[0] == 1  # row 0 is not_entailment
    digest = hashlib.sha256((DATA / "glue" / "RTE" / "dev.tsv").read_bytes()).hexdigest()
    assert digest.startswith("80230dfa1347")


@needs_glue
def test_both_layouts(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "dev.tsv").write_bytes((DATA / "glue" / "RTE" / "dev.tsv").read_bytes())
    d = load_glue("RTE", "validation", tmp_path, hub=False)
    assert len(d) == 277 and d.source.endswith("RTE/dev.tsv")


def test_missing_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    with pytest.raises(GlueDataMissing) as err:
        load_glue("qnli", "train", tmp_path, hub=False)
    msg = str(err.value)
    assert "\n" not in msg
    for path in candidate_files("qnli", "train", tmp_path):
        assert str(path) in msg
    assert "--data-dir" in msg and "HARNESS_DATA_DIR" in msg and "load_dataset" in msg


def test_missing_with_hub_fails_cleanly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GlueDataMissing):
        load_glue("qnli", "dev", tmp_path)


def test_subset_sizes_deterministic_and_nested():
    a = subset_indices(1000, 100, seed=3)
    assert len(a) == 100 and np.all(np.diff(a) > 0)
    assert np.array_equal(a, subset_indices(1000, 100, seed=3))
    assert not np.array_equal(a, subset_indices(1000, 100, seed=4))
    assert set(a) <= set(subset_indices(1000, 300, seed=3))  # nested within a seed
    assert len(subset_indices(1000, 0.25, seed=0)) == 250
    assert len(subset_indices(1000, 1.0, seed=0)) == 1000
    assert len(subset_indices(10, 50, seed=0)) == 10
    with pytest.raises(ValueError):
        subset_indices(10, 0, seed=0)
    with pytest.raises(ValueError):
        subset_indices(10, 2.5, seed=0)


@needs_glue
def test_training_subset_keeps_pairs_aligned():
    d = load_glue("mrpc", "train", DATA, hub=False)
    s = training_subset(d, 50, seed=1)
    idx = subset_indices(len(d), 50, seed=1)
    assert len(s) == 50
    assert s.text_b == [d.text_b[i] for i in idx]
    assert np.array_equal(s.labels, d.labels[idx])


# ---- metrics ----------------------------------------------------------------------------
GOLD = [1, 1, 1, 1, 0, 0, 0, 1, 0, 1]
PRED = [1, 1, 0, 1, 0, 1, 0, 1, 1, 0]
# pairs (pred, gold): tp = (1,1) at 0,1,3,7 -> 4; fp = (1,0) at 5,8 -> 2;
# fn = (0,1) at 2,9 -> 2; tn = (0,0) at 4,6 -> 2.
# accuracy = (4 + 2) / 10 = 0.6; precision = 4/6, recall = 4/6, F1 = 2*4/(2*4+2+2) = 8/12
# MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (8 - 4)/sqrt(6*6*4*4) = 4/24


def test_metrics_hand_computed():
    assert [int(c) for c in confusion(PRED, GOLD)] == [4, 2, 2, 2]
    assert accuracy(PRED, GOLD) == pytest.approx(0.6)
    assert f1(PRED, GOLD) == pytest.approx(8 / 12)
    assert matthews(PRED, GOLD) == pytest.approx(4 / 24)


def test_metrics_vectorised_and_degenerate():
    pred = torch.tensor([PRED, GOLD, [1 - g for g in GOLD], [1] * 10])
    out = task_metrics("cola", pred, torch.tensor(GOLD))
    assert out["mcc"].shape == (4,)
    assert out["mcc"] == pytest.approx([4 / 24, 1.0, -1.0, 0.0])  # constant pred -> 0
    mrpc = task_metrics("mrpc", pred, np.array(GOLD))
    # all-ones prediction: tp = 6, fp = 4, fn = 0 -> F1 = 12/16
    assert mrpc["f1"] == pytest.approx([8 / 12, 1.0, 0.0, 12 / 16])
    assert mrpc["accuracy"] == pytest.approx([0.6, 1.0, 0.0, 0.6])
    assert f1([0, 0], [0, 0]) == 0.0
    assert list(task_metrics("rte", PRED, GOLD)) == ["accuracy"]


@needs_glue
def test_existing_tasks_keep_their_data_roles_and_layouts():
    """The paper's GLUE tasks keep the data roles (and so the cell ids) they had before
    every GLUE task was added: one train and one dev file each, read as before."""
    from harness.data.glue import eval_splits, num_labels
    from harness.tasks.glue_bert.config import GlueBertParams

    files = GlueBertParams(tasks=["cola", "mrpc", "rte"]).data_files(DATA)
    assert sorted(files) == ["cola.dev", "cola.train", "mrpc.dev", "mrpc.train", "rte.dev",
                             "rte.train"]
    assert files["mrpc.dev"] == DATA / "glue" / "MRPC" / "dev.tsv"
    for task in ("cola", "mrpc", "rte", "qnli"):
        assert eval_splits(task) == ("dev",) and num_labels(task) == 2
