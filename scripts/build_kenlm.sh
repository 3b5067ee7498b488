#!/usr/bin/env bash
# Build KenLM's `lmplz` (the reference Kneser-Ney estimator) for the n-gram cross-check test.
# Usage: bash scripts/build_kenlm.sh [PREFIX]   (default ./.kenlm; binaries PREFIX/bin/{lmplz,query})
# Idempotent: returns at once when PREFIX/bin/lmplz already runs. Needs root (or sudo) only to
# apt-get the Boost/cmake toolchain when missing; the source is the kenlm sdist on PyPI.
set -euo pipefail

PREFIX="$(mkdir -p "${1:-./.kenlm}" && cd "${1:-./.kenlm}" && pwd)"
LMPLZ="$PREFIX/bin/lmplz"
PY="${PYTHON:-$(command -v python3 || true)}"

# lmplz --help exits 1, so look at what it prints rather than its exit status.
runs() { [ -x "$1" ] && [[ "$("$1" --help 2>&1 || true)" == *Kneser-Ney* ]]; }

if runs "$LMPLZ" && [ -x "$PREFIX/bin/query" ]; then
  echo "$LMPLZ"
  exit 0
fi

need_pkgs=()
for p in cmake g++ make zlib1g-dev libbz2-dev liblzma-dev libboost-program-options-dev \
         libboost-system-dev libboost-thread-dev libboost-test-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${need_pkgs[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_pkgs[@]}" >&2
fi

SRC="$PREFIX/src"
mkdir -p "$SRC"
if ! ls "$SRC"/kenlm-*.tar.gz >/dev/null 2>&1; then
  # --no-binary only for kenlm itself (':all:' would also compile its build deps, cmake among
  # them, from source); pip reads its metadata in an isolated build env of binary wheels.
  "$PY" -m pip download --no-deps --no-binary kenlm kenlm -d "$SRC" >&2
fi
TARBALL="$(ls "$SRC"/kenlm-*.tar.gz | head -n1)"
DIR="${TARBALL%.tar.gz}"
[ -f "$DIR/CMakeLists.txt" ] || tar xzf "$TARBALL" -C "$SRC"

cmake -S "$DIR" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DCOMPILE_TESTS=OFF \
  -DENABLE_PYTHON=OFF >&2
# lmplz estimates the model; query scores text with it (KenLM's own perplexity, for the test).
cmake --build "$DIR/build" --target lmplz query -j "$(nproc)" >&2
mkdir -p "$PREFIX/bin"
cp "$DIR/build/bin/lmplz" "$DIR/build/bin/query" "$PREFIX/bin/"
runs "$LMPLZ" || { echo "built $LMPLZ but it does not run" >&2; exit 1; }
echo "$LMPLZ"
