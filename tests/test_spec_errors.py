"""Malformed specs give one line per problem, naming the file and the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, needs_ptb

from harness.cli import main

VALID = """\
name: ok
task: {name: logistic, params: {epochs: 10}}
methods:
  - {name: baseline}
  - {name: imm_sampled, lambda: 1.5}
sizes: [2, 5]
"""

# (spec text, expected field location, expected words in the message)
CASES = [
    ("top-level typo", VALID.replace("sizes:", "size:"), "size", "did you mean 'sizes'"),
    ("method field typo", VALID.replace("lambda: 1.5", "lamda: 1.5"), "methods[1].lamda",
     "did you mean 'lambda'"),
    ("unknown method", VALID.replace("imm_sampled", "imm_sampeld"), "methods[1].name",
     "Did you mean: imm_sampled? Registered methods: baseline"),
    ("unknown task", VALID.replace("name: logistic", "name: logistc"), "task.name",
     "Did you mean: logistic? Registered tasks: logistic"),
    ("missing sizes", VALID.replace("sizes: [2, 5]\n", ""), "sizes", "missing required field"),
    ("sizes wrong type", VALID.replace("[2, 5]", "ten"), "sizes", "valid list"),
    ("negative size", VALID.replace("[2, 5]", "[2, -5]"), "sizes[1]", "greater than 0"),
    ("duplicate sizes", VALID.replace("[2, 5]", "[5, 5]"), "sizes", "unique"),
    ("lambda missing", VALID.replace(", lambda: 1.5", ""), "methods[1]", "needs a lambda"),
    ("lambda on baseline", VALID.replace("{name: baseline}", "{name: baseline, lambda: 1}"),
     "methods[0]", "takes no lambda"),
    ("bad lambda form", VALID.replace("lambda: 1.5", "lambda: auto"), "methods[1].lambda",
     "lambda must be a number, 'tune'"),
    ("tune range", VALID.replace("lambda: 1.5", "lambda: {tune: {low: 0.9, high: 0.1}}"),
     "methods[1].lambda", "must be below high"),
    ("schedule field", VALID.replace("lambda: 1.5",
     "lambda: {schedule: linear_ratio, slope: -0.01, intercep: 0.8}"),
     "methods[1].lambda.intercep", "did you mean 'intercept'"),
    ("task param typo", VALID.replace("epochs: 10", "epoch: 10"), "task.params.epoch",
     "did you mean 'epochs'"),
    ("task param value", VALID.replace("epochs: 10", "coefficients: [1, 0, 1, 0]"),
     "task.params.coefficients", "must be non-zero"),
    ("method param on wrong method", VALID.replace("{name: baseline}",
     "{name: baseline, params: {k: 3}}"), "methods[0].params.k", "unknown field"),
    ("unknown metric", VALID + "metric: acuracy\n", "metric", "known: accuracy"),
    ("duplicate labels", VALID.replace("{name: baseline}", "{name: baseline, label: x}")
     .replace("lambda: 1.5}", "lambda: 1.5, label: x}"), "methods", "duplicate label"),
    ("override typo", VALID.replace("lambda: 1.5}", "lambda: 1.5, task_params: {lrr: 2}}"),
     "methods[1].task_params.lrr", "did you mean 'lr'"),
    ("bad name", VALID.replace("name: ok", "name: 'a b'"), "name", "pattern"),
]


@pytest.mark.parametrize("text,location,words", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_malformed_spec_gives_one_line_naming_file_and_field(tmp_path, capsys, text, location,
                                                             words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    matching = [line for line in err if line.startswith(f"{path}: {location}:")]
    assert matching, err
    assert any(words in line for line in matching), matching
    assert all(line.startswith(f"{path}: ") for line in err), err


def test_valid_spec_passes(tmp_path, capsys):
    path = tmp_path / "ok.yaml"
    path.write_text(VALID)
    assert main(["validate", str(path)]) == 0
    assert "ok (logistic, 2 methods" in capsys.readouterr().out


@pytest.mark.parametrize("text,words", [
    ("name: [unclosed\n", "invalid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
])
def test_unreadable_spec(tmp_path, capsys, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{path}: ") and words in err[0]


def test_missing_file(capsys):
    assert main(["validate", "nowhere/spec.yaml"]) == 1
    assert capsys.readouterr().err.strip() == "nowhere/spec.yaml: no such spec file"


def test_cli_prints_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(VALID.replace("lambda: 1.5", "lamda: 1.5"))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    expected = f"{path}: methods[1].lamda: unknown field (did you mean 'lambda'?)"
    assert proc.stderr.strip() == expected


def test_every_shipped_spec_is_valid(capsys, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)  # the schema alone: no data here
    specs = sorted(Path(__file__).parents[1].glob("specs/**/*.yaml"))
    assert len(specs) >= 10
    assert main(["validate", *map(str, specs)]) == 0
    assert "data files checked" not in capsys.readouterr().out


@needs_ptb
def test_shipped_specs_pass_their_data_checks_on_the_shared_data(capsys):
    """The PTB and GLUE specs' files (CoLA, MRPC, RTE here) are found and fingerprinted."""
    root = Path(__file__).parents[1] / "specs"
    names = ["ptb.yaml", "ptb_paper.yaml", "glue.yaml", "glue_paper.yaml", "smoke/ptb.yaml",
             "smoke/glue.yaml", "smoke/glue_mlm.yaml"]
    assert main(["validate", "--data-dir", str(DATA), *(str(root / n) for n in names)]) == 0
    assert capsys.readouterr().out.count("data files checked") == len(names)
