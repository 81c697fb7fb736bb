#!/usr/bin/env bash
# Installs the independent oracles the GGUF tests compare against and prints the Python to run
# them with: scripts/setup-oracles.sh [BUILD_DIR] [--llama-cpp]
#   Python                     the shared torch venv of scripts/setup-py-torch.sh (PyPI's torch,
#                              transformers with its own GGUF loader, PyPI's gguf, pytest), once
#                              per machine under ~/.cache/nanovllm
#   BUILD_DIR/oracles/llama_cpp_python-V/
#                              llama-cpp-python's sdist: its Python bindings, the llama.cpp it
#                              vendors, and that llama.cpp's convert_hf_to_gguf.py + gguf-py
#   BUILD_DIR/oracles/llama-build/bin/
#                              (--llama-cpp only) libllama.so for the bindings, llama-quantize,
#                              llama-bench, llama-batched-bench, built from the vendored sources
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

tools=(llama-quantize llama-bench llama-batched-bench)
built() { for t in "${tools[@]}"; do [ -x "$work/llama-build/bin/$t" ] || return 1; done; }
if [ "$with_llama_cpp" = --llama-cpp ] && ! built; then
  # One shared build serves the Python bindings (libllama.so) and the benchmark tools.
  nice -n 10 cmake -S "$src" -B "$work/llama-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  nice -n 10 cmake --build "$work/llama-build" -j "$(nproc)" \
    --target llama "${tools[@]}" >&2
fi
echo "$venv/bin/python"
