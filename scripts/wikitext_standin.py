"""Write a STAND-IN for WikiText-2 in the release's layout, made from PTB text.

NOT WikiText: for machines without the real files (the development machine has none), to
exercise ``corpus: wikitext2`` end to end. It writes ``wiki.train.tokens``,
``wiki.valid.tokens`` and ``wiki.test.tokens`` under OUT (use ``<data dir>/wikitext-2``)
in the tokenized v1 format: articles under `` = Title = `` headings with `` = = Section
= = `` sub-headings, blank lines (a single space) between paragraphs, every line starting
and ending with a space, hyphens split as `` @-@ `` and numbers written with `` @,@ `` and
`` @.@ `` separators, ``<unk>`` kept. The text is PTB's sentences (train from
ptb.train.txt, valid from ptb.valid.txt, test from ptb.test.txt), grouped into paragraphs
and articles by a seeded generator: the same files on every run. A README.STANDIN beside
them says what they are.

Usage: python scripts/wikitext_standin.py --ptb DATA/ptb --out DATA/wikitext-2 [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

NOTE = """These files are a stand-in for WikiText-2, NOT WikiText-2.

They were written by scripts/wikitext_standin.py from Mikolov's PTB sentences in the
layout of the tokenized WikiText-2 v1 release (file names, headings, blank lines, @-@,
@,@ and @.@ separators, <unk>), so that the harness's `corpus: wikitext2` can be run end
to end where the real release is not available. Numbers measured on them are not
WikiText-2 numbers.
"""


def wiki_words(words: list[str], rng: random.Random) -> list[str]:
    """PTB words in WikiText's tokenization: hyphens split with @-@, numbers spelled out."""
    out: list[str] = []
    for word in words:
        if word == "N":
            value = rng.choice([rng.randint(1, 99), rng.randint(1900, 2015),
                                rng.randint(1000, 99999), None])
            if value is None:  # a decimal
                out += [str(rng.randint(0, 99)), "@.@", str(rng.randint(0, 9))]
            elif value >= 10000:  # thousands separator
                out += [str(value // 1000), "@,@", f"{value % 1000:03d}"]
            else:
                out.append(str(value))
        elif "-" in word.strip("-") and word != "<unk>":
            parts = word.split("-")
            for i, part in enumerate(parts):
                if i:
                    out.append("@-@")
                if part:
                    out.append(part)
        else:
            out.append(word)
    return out


def title_of(sentence: list[str]) -> str:
    words = [w for w in sentence if w.isalpha()][:3] or ["Untitled"]
    return " ".join(w.capitalize() for w in words)


def standin(lines: list[str], rng: random.Random) -> str:
    """PTB lines as WikiText-style articles (see the module docstring)."""
    sentences = [line.split() for line in lines if line.split()]
    out = [" "]
    i = 0
    while i < len(sentences):
        article = sentences[i:i + rng.randint(30, 90)]
        i += len(article)
        out += [f" = {title_of(article[0])} = ", " "]
        j = 0
        while j < len(article):
            if j and rng.random() < 0.3:
                level = "= " * rng.randint(2, 3)
                out += [f" {level}{title_of(article[j])} {level.strip()} ", " "]
            paragraph = article[j:j + rng.randint(3, 8)]
            j += len(paragraph)
            words = [w for s in paragraph for w in wiki_words(s, rng)]
            out += [" " + " ".join(words) + " ", " "]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ptb", required=True, help="folder with ptb.{train,valid,test}.txt")
    parser.add_argument("--out", required=True, help="folder to write (e.g. DATA/wikitext-2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        lines = (Path(args.ptb) / f"ptb.{split}.txt").read_text(encoding="utf-8").splitlines()
        text = standin(lines, random.Random(f"{args.seed}-{split}"))
        (out / f"wiki.{split}.tokens").write_text(text, encoding="utf-8")
    (out / "README.STANDIN").write_text(NOTE, encoding="utf-8")
    print(f"wrote a WikiText-2 stand-in (from PTB, not WikiText) to {out}")


if __name__ == "__main__":
    main()
