"""What the adapted MLM head of a spec reaches, against what the text itself allows.

Prints, for the spec's general-text corpus (``mlm_head.corpus``):
- references on the validation file's WordPiece tokens (special tokens excluded): the
  training file's unigram and its Kneser-Ney bigram (left context only), in nats;
- the norm of the mask token's input embedding against the vocabulary's mean and the
  never-used ``[unusedN]`` tokens' (an embedding under the latter was never trained);
- the adapted head (``GlueBertTask.adapted_head``: computed, or loaded from the cache):
  its held-out MLM loss at every evaluation, the best, and the time taken.

Usage: python benchmarks/glue_mlm_head.py [--spec specs/glue.yaml] [--data-dir DIR]
       [--mask-token TOKEN] [--threads 1] [--no-head]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from harness.ngram.kneser_ney import KneserNeyBigram
from harness.spec import load_spec
from harness.tasks.glue_bert.general_text import general_files, read_lines, resolve
from harness.tasks.glue_bert.restricted import _ids
from harness.tasks.glue_bert.task import GlueBertTask

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def references(tokenizer, files: dict, vocab: int) -> tuple[float, float]:
    """(unigram, KN bigram) nats per validation token, special tokens not predicted."""
    train = torch.tensor(_ids(tokenizer, read_lines(files["train"], tokenizer.unk_token),
                              None))
    valid = torch.tensor(_ids(tokenizer, read_lines(files["valid"], tokenizer.unk_token),
                              None))
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    prev, nxt = valid[:-1], valid[1:]
    keep = ~torch.isin(nxt, special)
    prev, nxt = prev[keep], nxt[keep]
    counts = torch.bincount(train[~torch.isin(train, special)], minlength=vocab).double()
    unigram = -torch.log((counts[nxt] + 0.01) / (counts.sum() + 0.01 * vocab)).mean().item()
    bigram = KneserNeyBigram.from_stream(train, vocab)
    total = 0.0
    for i in range(0, len(prev), 2048):
        rows = bigram.rows(prev[i:i + 2048])
        total -= torch.log(rows.gather(1, nxt[i:i + 2048, None]).clamp_min(1e-12)).sum().item()
    return unigram, total / len(prev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "specs" / "glue.yaml"))
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR") or str(DATA))
    ap.add_argument("--mask-token", default=None, help="override the spec's mask_token")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-head", action="store_true", help="only the references")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = load_spec(args.spec).task.params
    if params.mlm_head is None:
        raise SystemExit(f"{args.spec}: no mlm_head in its task params")
    if args.mask_token:
        params = params.model_copy(update={"mask_token": args.mask_token})
    task = GlueBertTask(params, args.data_dir)
    loaded = task.load_model(("mlm-head",))
    tok, emb = loaded.tokenizer, loaded.model.bert.embeddings.word_embeddings.weight
    root = Path(args.data_dir)
    files = general_files(params.mlm_head.corpus, root)
    print(f"corpus {resolve(params.mlm_head.corpus, root)}: {files['train']}")
    unigram, bigram = references(tok, files, int(loaded.model.config.vocab_size))
    print(f"validation WordPiece tokens: unigram {unigram:.3f} nats, KN bigram (left "
          f"context) {bigram:.3f} nats")
    unused = [i for t, i in tok.get_vocab().items() if t.startswith("[unused")]
    norms = emb.detach().norm(dim=1)
    mask_id = int(loaded.model.mask_token_id)
    print(f"input embedding norms: mask token {tok.convert_ids_to_tokens(mask_id)} "
          f"{norms[mask_id]:.3f}, [MASK] {norms[tok.mask_token_id]:.3f}, [UNK] "
          f"{norms[tok.unk_token_id]:.3f}, [unusedN] mean {norms[unused].mean():.3f}, "
          f"vocabulary mean {norms.mean():.3f}")
    if args.no_head:
        return
    clock = time.perf_counter()
    head = task.adapted_head()
    assert head is not None
    print(f"adapted head {head.key}: held-out MLM loss {head.valid_loss:.3f} nats at step "
          f"{head.best_step} of {head.steps} (fresh head {head.initial_loss:.3f}); "
          f"{head.train_positions} training and {head.valid_positions} held-out positions; "
          f"encode {head.seconds.get('encode', 0):.0f} s, train "
          f"{head.seconds.get('train', 0):.0f} s when computed; this call "
          f"{time.perf_counter() - clock:.0f} s")
    print("held-out loss by step: " + ", ".join(f"{s}: {v:.3f}" for s, v in head.history))


if __name__ == "__main__":
    main()
