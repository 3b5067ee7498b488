"""Small GLUE files in the real TSV layouts, for the tests and the GLUE smoke spec.

Headers exactly as GLUE ships them (CoLA without one; MNLI's train with 12 columns and its
dev files with 16), tab-separated with quoting off (bare ``"`` inside sentences), MRPC
with a UTF-8 BOM as in GLUE. The sentences are synthetic and the labels follow from them
(SST-2's sentiment from its adjectives, STS-B's score from the word overlap of the pair),
so a model can learn something in a few steps. Deterministic: the same files every time.

Usage as a script: python tests/glue_files.py OUT [--train N] [--dev N] [--tasks sst2 stsb]
(writes OUT/glue/<TASK>/...).
"""

from __future__ import annotations

import random
from pathlib import Path

HEADERS = {
    "SST-2": ["sentence", "label"],
    "MRPC": ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
    "STS-B": ["index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2", "score"],
    "QQP": ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
    "MNLI.train": ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                   "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
                   "sentence1", "sentence2", "label1", "gold_label"],
    "MNLI.dev": ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                 "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                 "sentence2", "label1", "label2", "label3", "label4", "label5", "gold_label"],
    "QNLI": ["index", "question", "sentence", "label"],
    "RTE": ["index", "sentence1", "sentence2", "label"],
    "WNLI": ["index", "sentence1", "sentence2", "label"],
}
FOLDERS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP",
           "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI"}
NOUNS = ["film", "story", "actor", "plot", "score", "cast", "script", "ending", "scene"]
GOOD = ["wonderful", "moving", "brilliant", "charming", "funny"]
BAD = ["dull", "tedious", "awful", "clumsy", "boring"]
WORDS = ["the", "a", "cat", "dog", "man", "woman", "sat", "ran", "on", "mat", "park",
         "plays", "guitar", "reads", "book", "eats", "apple", "in", "kitchen", "street"]
NLI = ["entailment", "neutral", "contradiction"]


def _sentence(rng: random.Random, n: int = 6) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def _pair(rng: random.Random) -> tuple[str, str, float]:
    """Two sentences sharing a random share of words, and 5 x that share."""
    a = _sentence(rng, 8)
    keep = rng.randint(0, 8)
    b = a[:keep] + _sentence(rng, 8 - keep)
    return " ".join(a) + " .", " ".join(b) + " .", 5.0 * keep / 8


def _tsv(path: Path, header: list[str] | None, rows: list[list[str]], bom: bool = False
         ) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([] if header is None else ["\t".join(header)]) + ["\t".join(r) for r in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)


def rows_for(task: str, n: int, rng: random.Random, split: str) -> list[list[str]]:
    rows = []
    for i in range(n):
        if task == "cola":
            words = _sentence(rng)
            ok = rng.random() < 0.7
            rows.append(["gj04", str(int(ok)), "" if ok else "*",
                         " ".join(words if ok else words[::-1]).capitalize() + "."])
        elif task == "sst2":
            positive = rng.random() < 0.5
            adj = rng.choice(GOOD if positive else BAD)
            quote = ' " ' if i % 5 == 0 else " "  # bare quotes, as in SST-2
            rows.append([f"the {rng.choice(NOUNS)} is{quote}{adj}{quote}and "
                         f"{rng.choice(GOOD if positive else BAD)} ", str(int(positive))])
        elif task == "mrpc":
            a, b, score = _pair(rng)
            rows.append([str(int(score >= 2.5)), str(1000 + i), str(2000 + i), a, b])
        elif task == "stsb":
            a, b, score = _pair(rng)
            rows.append([str(i), "main-captions", "MSRvid", "2012test", f"{i:04d}", "none",
                         "none", a, b, f"{score:.3f}"])
        elif task == "qqp":
            a, b, score = _pair(rng)
            rows.append([str(i), str(2 * i), str(2 * i + 1), a.replace(" .", " ?"),
                         b.replace(" .", " ?"), str(int(score >= 2.5))])
        elif task == "mnli":
            a, b, score = _pair(rng)
            gold = NLI[0] if score >= 3.5 else NLI[1] if score >= 1.5 else NLI[2]
            parse = "( ( " + a.replace(" .", "") + " ) . )"
            row = [str(i), str(100 + i), f"{100 + i}e", "fiction", parse, parse,
                   f"(ROOT (S {a}))", f"(ROOT (S {b}))", a, b, gold]
            row += [gold] * 4 if split != "train" else []
            rows.append(row + [gold])
        elif task in ("qnli", "rte"):
            a, b, score = _pair(rng)
            label = "entailment" if score >= 2.5 else "not_entailment"
            rows.append([str(i), a.replace(" .", " ?") if task == "qnli" else a, b, label])
        elif task == "wnli":
            a, b, score = _pair(rng)
            rows.append([str(i), a, b, str(int(score >= 2.5))])
    return rows


def write_glue(root: Path, tasks: list[str], train: int = 40, dev: int = 16,
               seed: int = 0) -> Path:
    """Write ``root/glue/<TASK>/{train,dev}.tsv`` (MNLI: train, dev_matched,
    dev_mismatched) for ``tasks``; returns ``root``."""
    for task in tasks:
        folder = root / "glue" / FOLDERS[task]
        splits = ({"train": train, "dev_matched": dev, "dev_mismatched": dev}
                  if task == "mnli" else {"train": train, "dev": dev})
        for split, n in splits.items():
            rng = random.Random(f"{seed}-{task}-{split}")
            key = FOLDERS[task] if task != "mnli" else f"MNLI.{split.split('_')[0]}"
            header = None if task == "cola" else HEADERS[key]
            _tsv(folder / f"{split}.tsv", header, rows_for(task, n, rng, split),
                 bom=task == "mrpc")
    return root


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--dev", type=int, default=16)
    parser.add_argument("--tasks", nargs="+", default=list(FOLDERS))
    args = parser.parse_args()
    write_glue(Path(args.out), args.tasks, args.train, args.dev)
    print(f"wrote small GLUE files ({', '.join(args.tasks)}) under {args.out}/glue")
