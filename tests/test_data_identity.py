"""Data identity and data checks (issue 11, points 2 and 3), with real files: a changed data
file means new cells and reports name their data; every data problem is one line naming
the file, before any training; the fingerprint cache skips rehashing unchanged files."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from proc import events, spawn, wait_for, wait_gone

from harness.cli import main
from harness.data import fingerprint as fp
from harness.data.ptb import load_ptb

TINY_PTB = {
    "name": "tiny_ptb",
    "task": {"name": "ptb_lstm", "params": {
        "emb_size": 8, "hidden_size": 8, "layers": 1, "batch_size": 4, "bptt": 10,
        "max_epochs": 1, "eval_batch_size": 4, "induced_eval_tokens": 1000,
        "imm_window": 5}},
    "methods": [{"name": "baseline"}],
    "sizes": [2000],
    "tracking": {"enabled": False},
}


def write_ptb(folder: Path, seed: int, tokens: dict[str, int] | None = None) -> Path:
    """Three PTB-format files of random words (``<unk>`` included) under folder/ptb/."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(40)] + ["<unk>"]
    (folder / "ptb").mkdir(parents=True, exist_ok=True)
    for split, n in (tokens or {"train": 3000, "valid": 600, "test": 600}).items():
        picks = rng.choice(words, size=n)
        lines = [" " + " ".join(picks[i:i + 10]) + " " for i in range(0, n, 10)]
        (folder / "ptb" / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def spec_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_PTB))
    return path


def records(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in tmp_path.glob("results/tiny_ptb/cells/*.json")]


def test_changed_data_means_new_cells_and_reports_name_their_data(spec_path, tmp_path,
                                                                   capsys) -> None:
    a, b = write_ptb(tmp_path / "A", 0), write_ptb(tmp_path / "B", 1)
    run = ["run", str(spec_path), "--no-report"]
    assert main([*run, "--data-dir", str(a)]) == 0
    assert "(0 resumed)" in capsys.readouterr().out
    assert main([*run, "--data-dir", str(b)]) == 0  # same names, other bytes: new cells
    assert "(0 resumed)" in capsys.readouterr().out
    by_data = {r["data"]["train"]["path"]: r for r in records(tmp_path)}
    assert set(by_data) == {str((a / "ptb" / "ptb.train.txt").resolve()),
                            str((b / "ptb" / "ptb.train.txt").resolve())}
    rec_a = by_data[str((a / "ptb" / "ptb.train.txt").resolve())]
    assert rec_a["data"]["train"]["size"] == (a / "ptb" / "ptb.train.txt").stat().st_size
    assert rec_a["data"]["valid"]["sha256"] == fp.sha256_file(a / "ptb" / "ptb.valid.txt")
    # Each report reads the cell of its own data, and says which data that is.
    for folder, record in ((a, rec_a), (b, by_data[str((b / "ptb/ptb.train.txt").resolve())])):
        assert main(["report", str(spec_path), "--data-dir", str(folder), "--format",
                     "csv", "--metric", "test_ppl"]) == 0
        out, err = capsys.readouterr()
        median = float(out.splitlines()[1].split(",")[5])
        assert median == pytest.approx(record["metrics"]["test_ppl"][0])
        assert "1 record(s)" in err  # the other data's cell is left out, and said so
        assert main(["report", str(spec_path), "--data-dir", str(folder)]) == 0
        md = capsys.readouterr().out
        assert f"ptb.train.txt (sha256 {record['data']['train']['sha256'][:12]})" in md
    # The same bytes in another folder are the same cells: resumed.
    copy = tmp_path / "copy"
    (copy / "ptb").mkdir(parents=True)
    for f in (a / "ptb").iterdir():
        (copy / "ptb" / f.name).write_bytes(f.read_bytes())
    assert main([*run, "--data-dir", str(copy)]) == 0
    assert "(1 resumed)" in capsys.readouterr().out
    # Reporting the spec without data: one line saying what to do.
    assert main(["report", str(spec_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--data-dir" in err and "results folder" in err


BAD_FILES = {
    "empty valid": ("valid", b"", "is empty"),
    "empty train": ("train", b"", "is empty"),
    "latin-1": ("test", " caf\xe9 au lait \n".encode("latin-1") * 100, "not UTF-8"),
    "nul byte": ("valid", b" a b \n\0 c \n" * 100, "NUL byte"),
    "too short": ("valid", b" a b c \n", "tokens; the spec needs at least 8"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_data_is_one_line_naming_the_file_before_any_training(spec_path, tmp_path, capsys,
                                                                   case) -> None:
    split, content, words = BAD_FILES[case]
    data = write_ptb(tmp_path / "data", 0)
    target = data / "ptb" / f"ptb.{split}.txt"
    target.write_bytes(content)
    for command in (["validate", str(spec_path)], ["run", str(spec_path)]):
        assert main([*command, "--data-dir", str(data)]) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(target) in err and words in err, err
    assert not records(tmp_path) and not events(tmp_path / "results" / "tiny_ptb", "started")


def test_words_outside_the_vocabulary_need_an_unk(spec_path, tmp_path, capsys) -> None:
    data = write_ptb(tmp_path / "data", 0)
    for split in ("train", "valid", "test"):
        path = data / "ptb" / f"ptb.{split}.txt"
        path.write_text(path.read_text().replace("<unk>", "w0"))
    (data / "ptb" / "ptb.test.txt").write_text(" novel words here \n" * 100)
    assert main(["validate", str(spec_path), "--data-dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert "ptb.test.txt" in err and "'novel'" in err and "no <unk>" in err


def test_validate_with_data_dir_runs_the_checks(spec_path, tmp_path, capsys) -> None:
    data = write_ptb(tmp_path / "data", 0)
    assert main(["validate", str(spec_path), "--data-dir", str(data)]) == 0
    assert "3 data files checked" in capsys.readouterr().out
    assert main(["validate", str(spec_path), "--data-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "ptb.train.txt not found" in err and "\n" not in err.strip()
    assert main(["validate", str(spec_path)]) == 0  # without --data-dir: the schema only


def test_a_byte_order_mark_is_not_a_token(tmp_path) -> None:
    plain = write_ptb(tmp_path / "plain", 0)
    bom = write_ptb(tmp_path / "bom", 0)
    for split in ("train", "valid", "test"):
        path = bom / "ptb" / f"ptb.{split}.txt"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    a, b = load_ptb(plain), load_ptb(bom)
    assert a.vocab == b.vocab and not any("\ufeff" in w for w in b.vocab)
    assert a.train.tolist() == b.train.tolist()


def test_fingerprints_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(fp.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(fp, "_cache", None)
    hashed: list[Path] = []
    real = fp.sha256_file
    monkeypatch.setattr(fp, "sha256_file", lambda p: hashed.append(p) or real(p))
    path = tmp_path / "data.txt"
    path.write_text("alpha beta\n")
    first = fp.fingerprint(path)
    monkeypatch.setattr(fp, "_cache", None)  # a new process: the cache file is read back
    assert fp.fingerprint(path) == first and len(hashed) == 1
    path.write_text("gamma delt\n")  # same size, new mtime and content
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = fp.fingerprint(path)
    assert len(hashed) == 2 and second.sha256 != first.sha256 and second.size == first.size
    assert json.loads((tmp_path / "cache" / "fingerprints.json").read_text())


def test_ctrl_c_keeps_a_running_cells_checkpoints_for_the_rerun(tmp_path) -> None:
    data = write_ptb(tmp_path / "data", 0, {"train": 8000, "valid": 600, "test": 600})
    spec = yaml.safe_load(yaml.safe_dump(TINY_PTB))
    spec["task"]["params"].update(max_epochs=12, checkpoint=True)
    spec["sizes"], spec["seeds"] = [8000], [0, 1]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    results = tmp_path / "results" / "tiny_ptb"
    args = ["run", str(path), "--workers", "2", "--no-report", "--data-dir", str(data)]
    run = spawn(args, tmp_path)
    wait_for(lambda: len(list((results / "checkpoints").rglob("*.pt"))) >= 2, proc=run,
             what="both cells' first checkpoints")
    os.kill(run.pid, signal.SIGINT)
    assert run.wait(30) == 130 and wait_gone(run.pid) == []
    kept = list((results / "checkpoints").rglob("*.pt"))
    assert len(kept) == 2 and not list((results / "cells").glob("*.json"))
    rerun = spawn(args, tmp_path)
    assert rerun.wait(300) == 0
    assert len(list((results / "cells").glob("*.json"))) == 2
    assert not list((results / "checkpoints").rglob("*.pt"))  # removed once recorded
