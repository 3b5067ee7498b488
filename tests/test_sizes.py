"""Sizes are what they say: a size larger than the data a task reads is refused at
`harness validate` and `harness run`, with one line naming the size, the file and its
length, before anything is computed; tasks that generate their data have no limit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import DATA, needs_ptb
from glue_files import write_glue
from proc import HARNESS

from harness.data.corpora import token_count


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_DATA_DIR"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run([*HARNESS, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def write(tmp_path: Path, task: dict[str, Any], sizes: list[int]) -> Path:
    spec = {"name": "sizes", "task": task, "methods": [{"name": "baseline"}],
            "sizes": sizes, "seeds": [0], "runs": 1, "tracking": {"enabled": False}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def refused_everywhere(tmp_path: Path, spec: Path, data: Path, line: str) -> None:
    """`validate` and `run` both refuse with exactly ``line``; nothing is computed."""
    out = harness("validate", str(spec), "--data-dir", str(data), cwd=tmp_path)
    assert out.returncode == 1 and not out.stdout
    assert out.stderr.splitlines() == [f"{spec}: {line}"]
    out = harness("run", str(spec), "--data-dir", str(data), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [f"error: {line}"]
    assert not list(tmp_path.glob("results/*/cells/*.json"))


@needs_ptb
def test_ptb_sizes_beyond_a_short_corpus_are_refused(tmp_path: Path) -> None:
    lines = (DATA / "ptb" / "ptb.train.txt").read_text(encoding="utf-8").splitlines()
    short = tmp_path / "short.train.txt"
    short.write_text("\n".join(lines[:1500]) + "\n", encoding="utf-8")
    tokens = token_count(short)
    assert 30000 < tokens < 40000  # the 32,928-token corpus, give or take
    task = {"name": "ptb_lstm", "params": {
        "corpus": {"train": str(short), "valid": "ptb/ptb.valid.txt",
                   "test": "ptb/ptb.test.txt"}}}
    spec = write(tmp_path, task, [30000, 40000, 80000])
    refused_everywhere(tmp_path, spec, DATA, (
        f"sizes: 40000, 80000 are more than {short} holds ({tokens} training tokens); a "
        f"size is that many training tokens: use sizes of at most {tokens}"))
    # The corpus's own length is a size (all of it), and the default corpus's too.
    ok = write(tmp_path, task, [30000, tokens])
    out = harness("validate", str(ok), "--data-dir", str(DATA), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    paper = write(tmp_path, {"name": "ptb_lstm", "params": {}}, [929589])
    assert harness("validate", str(paper), "--data-dir", str(DATA),
                   cwd=tmp_path).returncode == 0


def test_wikitext_sizes_are_counted_in_tokens(tmp_path: Path) -> None:
    from test_lm_corpus_task import wiki_text

    (tmp_path / "wikitext-2").mkdir()
    for split, lines, seed in (("train", 200, 1), ("valid", 160, 2), ("test", 160, 3)):
        (tmp_path / "wikitext-2" / f"wiki.{split}.tokens").write_text(
            wiki_text(lines, seed), encoding="utf-8")
    train = tmp_path / "wikitext-2" / "wiki.train.tokens"
    tokens = token_count(train)
    spec = write(tmp_path, {"name": "ptb_lstm", "params": {"corpus": "wikitext2"}},
                 [100, tokens + 1])
    refused_everywhere(tmp_path, spec, tmp_path, (
        f"sizes: {tokens + 1} is more than {train} holds ({tokens} training tokens); a size "
        f"is that many training tokens: use sizes of at most {tokens}"))


def test_glue_sizes_are_counted_in_examples_of_each_task(tmp_path: Path) -> None:
    data = write_glue(tmp_path / "data", ["rte", "mrpc"], train=30)
    task = {"name": "glue_bert", "params": {"tasks": ["rte", "mrpc"], "model": "minilm"}}
    spec = write(tmp_path, task, [20, 31])
    train = data / "glue" / "RTE" / "train.tsv"
    refused_everywhere(tmp_path, spec, data, (
        f"sizes: 31 is more than {train} holds (30 rte training examples); a size is that "
        "many rte training examples: use sizes of at most 30"))
    # Said on purpose: a larger size means each task's whole training set.
    task["params"]["sizes_beyond_data"] = "all"
    spec = write(tmp_path, task, [20, 31])
    out = harness("validate", str(spec), "--data-dir", str(data), cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("task", ["logistic", "grid_rl"])
def test_tasks_that_generate_their_data_have_no_limit(tmp_path: Path, task: str) -> None:
    spec = write(tmp_path, {"name": task, "params": {}}, [10, 10**9])
    out = harness("validate", str(spec), "--data-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@needs_ptb
def test_the_task_itself_refuses_a_size_beyond_its_stream() -> None:
    from harness.errors import DataError
    from harness.tasks.ptb_lstm.config import PtbLstmParams
    from harness.tasks.ptb_lstm.task import PtbLstmTask

    task = PtbLstmTask(PtbLstmParams(device="cpu"), str(DATA))
    assert len(task.train_stream(929589)) == 929589
    with pytest.raises(DataError, match="size 929590 is more than the 929589 training"):
        task.train_stream(929590)
