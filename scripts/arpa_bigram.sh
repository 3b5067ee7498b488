#!/usr/bin/env bash
# An ARPA bigram of a training text with KenLM's lmplz, for a spec's `restricted_arpa`.
# Usage: bash scripts/arpa_bigram.sh TRAIN_TEXT OUT.arpa [UNK_ALIAS]
#   TRAIN_TEXT: one sentence (or line) per line, e.g. ptb.train.txt or wiki.train.tokens;
#   UNK_ALIAS:  what <unk> is renamed to (default <ptb-unk>; the spec's arpa_unk names it,
#               with the same default).
# lmplz reserves <unk> for its own unknown-word entry and refuses it in the input, so the
# corpus's <unk> is renamed first (the rename tests/test_kneser_ney.py's cross-check uses).
# Each line is a sentence <s> .. </s>; the harness reads </s> and <s> as its <eos> (blank
# lines, as in WikiText, are <s> </s> to lmplz and a lone <eos> to the harness: the same
# bigram). lmplz comes from $KENLM_BIN (a folder or the binary), PATH, or ./.kenlm/bin
# (bash scripts/build_kenlm.sh builds it). --discount_fallback lets tiny corpora through.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,4p' "$0" >&2; exit 2; }
TRAIN="$1"; OUT="$2"; ALIAS="${3:-<ptb-unk>}"
LMPLZ=""
for c in "${KENLM_BIN:-}" "$(command -v lmplz || true)" "./.kenlm/bin"; do
  [ -n "$c" ] || continue
  [ -d "$c" ] && c="$c/lmplz"
  if [ -x "$c" ]; then LMPLZ="$c"; break; fi
done
[ -n "$LMPLZ" ] || { echo "lmplz not found (KENLM_BIN, PATH, ./.kenlm/bin); build it with: bash scripts/build_kenlm.sh" >&2; exit 1; }
[ -f "$TRAIN" ] || { echo "$TRAIN: no such file" >&2; exit 1; }
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
sed "s/<unk>/${ALIAS}/g" "$TRAIN" | "$LMPLZ" -o 2 -S 1G -T "$TMP" --discount_fallback > "$TMP/out.arpa"
mv "$TMP/out.arpa" "$OUT"
echo "$OUT"
