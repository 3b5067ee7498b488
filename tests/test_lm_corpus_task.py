"""The language-model task on a named corpus: the WikiText-2 smoke spec through the real
runner on files in the release's layout, the restricted model's own perplexities in every
record (checked against an independent computation and the paper's Table 5), and an ARPA
bigram handed to a spec (``restricted_arpa``: a hand-written one everywhere, KenLM's where
lmplz is available)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DATA, needs_ptb

from harness.ngram import ArpaBigram, KneserNeyBigram
from harness.spec import load_spec
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.task import PtbLstmTask

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["the", "of", "@-@", "@,@", "<unk>", "."] + [f"w{i}" for i in range(150)]


def wiki_text(lines: int, seed: int) -> str:
    """Text in the tokenized WikiText v1 format (headings, blank lines, <unk>, @-@)."""
    rng = random.Random(seed)
    out = [" "]
    for i in range(lines):
        if i % 12 == 0:
            out += [f" = Article {i} = ", " "]
        elif i % 5 == 0:
            out += [f" = = Section {i} = = ", " "]
        words = [rng.choice(WORDS[: 20 + i % 130]) for _ in range(rng.randint(5, 25))]
        out += [" " + " ".join(words) + " . ", " "]
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def wiki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "wikitext-2").mkdir()
    for split, lines, seed in (("train", 400, 1), ("valid", 160, 2), ("test", 160, 3)):
        (root / "wikitext-2" / f"wiki.{split}.tokens").write_text(wiki_text(lines, seed),
                                                                   encoding="utf-8")
    return root


pytestmark = pytest.mark.usefixtures("one_thread")


def test_wikitext2_spec_runs_baseline_and_imm(wiki_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.runner import run_spec

    monkeypatch.chdir(tmp_path)
    spec = load_spec(ROOT / "specs" / "smoke" / "wikitext2.yaml",
                     overrides={"output_dir": str(tmp_path / "results")})
    assert spec.task.params.corpus == "wikitext2"
    run_spec(spec.model_copy(update={"tracking": spec.tracking.model_copy(
        update={"enabled": False})}), data_dir=str(wiki_dir))
    records = [json.loads(p.read_text())
               for p in (tmp_path / "results" / "smoke_wikitext2" / "cells").glob("*.json")]
    assert sorted(r["label"] for r in records) == ["baseline", "imm"]
    task = PtbLstmTask(spec.task.params, str(wiki_dir))
    size, cut = spec.sizes[0], spec.task.params.eval_tokens
    kn = KneserNeyBigram.from_stream(task.corpus.train[:size], task.vocab_size)
    own = {"restricted_ppl_valid": kn.perplexity(task.corpus.valid[:cut]),
           "restricted_ppl_test": kn.perplexity(task.corpus.test[:cut])}
    for r in records:
        assert r["status"] == "ok", r["reason"]
        assert r["config"]["task"]["params"]["corpus"] == "wikitext2"
        assert set(r["data"]) == {"train", "valid", "test"}
        for split, entry in r["data"].items():
            path = wiki_dir / "wikitext-2" / f"wiki.{split}.tokens"
            assert entry["path"] == str(path.resolve())
            assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        for name, value in own.items():
            assert r["metrics"][name] == [pytest.approx(value, rel=1e-9)]
        assert all(math.isfinite(v[0]) for v in r["metrics"].values())
    # the same value in both methods' records: the restricted model is the cell's, not the
    # method's
    assert records[0]["metrics"]["restricted_ppl_test"] == records[1]["metrics"][
        "restricted_ppl_test"]


def test_validate_names_the_missing_wikitext_files(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("HARNESS_DATA_DIR", None)
    harness = Path(sys.executable).with_name("harness")
    done = subprocess.run([str(harness), "validate", str(ROOT / "specs" / "wikitext2.yaml"),
                           "--data-dir", str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    message = next(line for line in lines if "corpus wikitext2" in line)
    assert "wiki.train.tokens" in message and str(tmp_path / "wikitext-2") in message
    assert "Traceback" not in done.stderr


@needs_ptb
def test_restricted_ppl_at_full_size_is_table5s_first_row() -> None:
    """At all of PTB's training text the restricted model's own perplexities are Table 5's
    Kneser-Ney column (199.28 valid, 185.71 test; lmplz 199.02 / 185.70)."""
    task = PtbLstmTask(PtbLstmParams(device="cpu"), str(DATA))
    bigram = task.restricted(task.corpus.train)
    assert bigram.perplexity(task.corpus.valid) == pytest.approx(199.28, abs=0.5)
    assert bigram.perplexity(task.corpus.test) == pytest.approx(185.71, abs=0.1)


# ---- an ARPA bigram as the restricted model ------------------------------------------------
def write_arpa_of(kn: KneserNeyBigram, stream: torch.Tensor, vocab: list[str], path: Path,
                  unk_alias: str = "<ptb-unk>") -> None:
    """The ARPA form of our interpolated KN bigram: unigram log10 p_lower(w) with backoff
    log10 gamma(v); every seen bigram with its full interpolated probability. <eos> is
    </s> when predicted and <s> as a context; the corpus's <unk> is spelled ``unk_alias``,
    and the file gets its own (near-zero) <unk>, as lmplz's has."""
    def name(w: str) -> str:
        return unk_alias if w == "<unk>" else w

    lower, gamma = kn.continuation(), kn.missing_mass()
    eos = vocab.index("<eos>")
    uni = [f"-99\t<s>\t{math.log10(gamma[eos]):.10f}",
           f"{math.log10(lower[eos]):.10f}\t</s>", "-30\t<unk>\t0"]
    uni += [f"{math.log10(lower[i]):.10f}\t{name(w)}\t{math.log10(gamma[i]):.10f}"
            for i, w in enumerate(vocab) if w != "<eos>"]
    pairs = torch.unique(stream[:-1] * len(vocab) + stream[1:])
    prev, nxt = pairs // len(vocab), pairs % len(vocab)
    probs = kn.prob(prev, nxt)
    bi = []
    for v, w, p in zip(prev.tolist(), nxt.tolist(), probs.tolist(), strict=True):
        left = "<s>" if v == eos else name(vocab[v])
        right = "</s>" if w == eos else name(vocab[w])
        bi.append(f"{math.log10(p):.10f}\t{left} {right}")
    path.write_text("\\data\\\n" f"ngram 1={len(uni)}\nngram 2={len(bi)}\n\n\\1-grams:\n"
                    + "\n".join(uni) + "\n\n\\2-grams:\n" + "\n".join(bi) + "\n\n\\end\\\n",
                    encoding="utf-8")


def test_arpa_file_is_the_restricted_model_and_part_of_the_cell(wiki_dir: Path,
                                                                 tmp_path: Path) -> None:
    from harness.cells.data import CellData

    base = PtbLstmParams(corpus="wikitext2", device="cpu", eval_tokens=2000)
    task = PtbLstmTask(base, str(wiki_dir))
    size = 3000
    train = task.corpus.train[:size]
    kn = task.restricted(train)
    arpa = wiki_dir / "kn2.arpa"
    write_arpa_of(kn, train, task.corpus.vocab, arpa)
    params = base.model_copy(update={"restricted_arpa": "kn2.arpa"})  # relative to data dir
    files = params.data_files(wiki_dir)
    assert files["restricted_arpa"] == arpa
    params.check_data(files, [size])
    with_arpa = PtbLstmTask(params, str(wiki_dir))
    restricted = with_arpa.restricted(train)
    ids = torch.arange(task.vocab_size)
    # the file's rows are our KN rows (less the sliver its own <unk> holds)
    torch.testing.assert_close(restricted.rows(ids[:50]), kn.rows(ids[:50]), atol=1e-6,
                               rtol=1e-5)
    valid = task.corpus.valid[:2000]
    assert restricted.perplexity(valid) == pytest.approx(kn.perplexity(valid), rel=1e-6)
    assert torch.equal(restricted.counts.follow_types(), kn.follow_types())  # noising's counts
    # the ARPA file is fingerprinted: another file means other cells
    data = CellData(wiki_dir)
    before = data.identity(params)["restricted_arpa"]
    assert before == hashlib.sha256(arpa.read_bytes()).hexdigest()
    assert "restricted_arpa" not in CellData(wiki_dir).identity(base)
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\ta\n\n\\end\\\n")
    with pytest.raises(Exception, match=r"bad.arpa: no \\1-grams: and \\2-grams: sections"):
        params.model_copy(update={"restricted_arpa": str(bad)}).check_data(
            {**files, "restricted_arpa": bad}, [size])
    with pytest.raises(Exception, match="restricted_arpa: ARPA file .*absent.arpa not found"):
        params.model_copy(update={"restricted_arpa": "absent.arpa"}).data_files(wiki_dir)


def _lmplz() -> Path | None:
    for c in (os.environ.get("KENLM_BIN", ""), shutil.which("lmplz") or "",
              str(ROOT / ".kenlm" / "bin")):
        path = Path(c) / "lmplz" if c and Path(c).is_dir() else Path(c) if c else None
        if path is not None and path.is_file() and os.access(path, os.X_OK):
            return path
    return None


@needs_ptb
@pytest.mark.skipif(_lmplz() is None, reason="KenLM lmplz not found (KENLM_BIN, PATH, "
                    "./.kenlm/bin); build it with `bash scripts/build_kenlm.sh`")
def test_arpa_bigram_script_builds_what_a_spec_reads(tmp_path: Path) -> None:
    """What the README's KenLM section says: scripts/arpa_bigram.sh renames <unk> and runs
    lmplz -o 2; a spec's restricted_arpa reads the file (arpa_unk names the renamed <unk>),
    and its perplexities are lmplz's (Table 5's reference: 199.02 valid, 185.70 test)."""
    arpa = tmp_path / "ptb2.arpa"
    env = {**os.environ, "KENLM_BIN": str(_lmplz())}
    subprocess.run(["bash", str(ROOT / "scripts" / "arpa_bigram.sh"),
                    str(DATA / "ptb" / "ptb.train.txt"), str(arpa)], check=True, env=env,
                   capture_output=True, timeout=300)
    assert "<ptb-unk>" in arpa.read_text()
    params = PtbLstmParams(device="cpu", restricted_arpa=str(arpa))
    task = PtbLstmTask(params, str(DATA))
    restricted = task.restricted(task.corpus.train)
    assert isinstance(restricted.arpa, ArpaBigram)
    valid = restricted.perplexity(task.corpus.valid, start_id=task.corpus.eos_id)
    test = restricted.perplexity(task.corpus.test, start_id=task.corpus.eos_id)
    assert valid == pytest.approx(199.02, abs=0.01) and test == pytest.approx(185.70, abs=0.01)
    ours = PtbLstmTask(PtbLstmParams(device="cpu"), str(DATA)).restricted(task.corpus.train)
    assert restricted.perplexity(task.corpus.valid) == pytest.approx(
        ours.perplexity(task.corpus.valid), abs=0.1)


def test_wikitext2_smoke_spec_mirrors_its_spec() -> None:
    full, smoke = (load_spec(ROOT / "specs" / f"{d}wikitext2.yaml") for d in ("", "smoke/"))
    assert smoke.name == "smoke_wikitext2" and full.task.params.corpus == "wikitext2"
    assert smoke.task.params.corpus == full.task.params.corpus
    assert [(m.name, m.display, m.lambda_) for m in smoke.methods] == [
        (m.name, m.display, m.lambda_) for m in full.methods] == [
        ("baseline", "baseline", None), ("imm_sampled", "imm", 0.2)]
