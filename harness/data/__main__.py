"""``python -m harness.data [--data-dir DIR] [NAME ...]``: the token counts and vocabulary
size the loader reports for each language-model corpus found (the README's table)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.data.corpora import CORPORA, SPLITS, corpus_files, load_files
from harness.data.location import DATA_DIR_ENV, data_root
from harness.errors import DataError


def report(corpus: str | Mapping[str, str], root: Path | None) -> dict[str, int | str]:
    """What the loader reports for a corpus: its files, tokens per split, vocabulary."""
    files = corpus_files(corpus, root)
    loaded = load_files(files)
    out: dict[str, int | str] = {f"{split}_source": str(files[split]) for split in SPLITS}
    out.update({split: len(getattr(loaded, split)) for split in SPLITS})
    out["vocab"] = len(loaded.vocab)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m harness.data",
        description="token counts and vocabulary size of each corpus, as the loader reads it")
    parser.add_argument("names", nargs="*", default=list(CORPORA), help="corpus names")
    parser.add_argument("--data-dir", help=f"data folder (else ${DATA_DIR_ENV})")
    args = parser.parse_args(argv)
    root = data_root(args.data_dir)
    status = 0
    print("| corpus | train | valid | test | vocabulary | read from |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name in args.names:
        try:
            r = report(name, root)
        except DataError as err:
            print(f"{name}: {err}", file=sys.stderr)
            status = 1
            continue
        folder = os.path.commonpath([str(r[f"{s}_source"]) for s in SPLITS])
        print(f"| {name} | {r['train']:,} | {r['valid']:,} | {r['test']:,} | {r['vocab']:,} "
              f"| {folder} |")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
