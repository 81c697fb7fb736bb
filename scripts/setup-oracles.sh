#!/usr/bin/env bash
# Installs the independent oracles the GGUF tests compare against and prints the Python to run
# them with: scripts/setup-oracles.sh [BUILD_DIR] [--llama-cpp]
#   Python                     the shared torch venv of scripts/setup-py-torch.sh (PyPI's torch,
#                              transformers with its own GGUF loader, PyPI's gguf, pytest), once
#                              per machine under ~/.cache/nanovllm
#   BUILD_DIR/oracles/llama_cpp_python-V/
#                              llama-cpp-python's sdist: its Python bindings, the llama.cpp it
#                              vendors, and that llama.cpp's convert_hf_to_gguf.py + gguf-py
#   BUILD_DIR/oracles/llama-build
#                              (--llama-cpp only) a link to the llama.cpp build of
#                              bench/peers/setup.sh (one per machine, in ~/.cache/nanovllm/peers):
#                              libllama.so for the bindings, llama-quantize, llama-bench,
#                              llama-batched-bench, llama-server, from the same vendored sources
# The llama.cpp build takes 15+ minutes on 2 cores, so `make test` does not run it: tests read
# llama.cpp's answers from goldens that scripts/gen_oracle_goldens.py made with it (committed
# under tests/data/oracles) and run the converter and transformers live.
# Everything is cached: a second run only checks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(mkdir -p "${1:-$root/build}" && cd "${1:-$root/build}" && pwd)"
with_llama_cpp="${2:-}"
version=0.3.36
work="$build_dir/oracles"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
mkdir -p "$work"

venv="$("$root/scripts/setup-py-torch.sh")"

if [ ! -f "$src/convert_hf_to_gguf.py" ]; then
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$work" "llama-cpp-python==$version" >&2
  tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
fi

if [ "$with_llama_cpp" = --llama-cpp ]; then
  "$root/bench/peers/setup.sh" llama.cpp >&2
  peers="${NANOVLLM_CACHE:-$HOME/.cache/nanovllm}/peers/llama.cpp/llama-build"
  [ -L "$work/llama-build" ] || rm -rf "$work/llama-build"
  ln -sfn "$peers" "$work/llama-build"
fi
echo "$venv/bin/python"
