#!/usr/bin/env bash
# Installs the independent oracles the GGUF tests compare against, cached under the build
# directory (a second run does nothing): scripts/setup-oracles.sh [BUILD_DIR] [--llama-cpp]
#   BUILD_DIR/oracles/venv     Python with torch (PyPI's wheel, CPU use only), transformers (its
#                              own GGUF loader, which dequantizes to f32), PyPI's gguf, pytest
#   BUILD_DIR/oracles/llama_cpp_python-V/
#                              llama-cpp-python's sdist: its Python bindings, the llama.cpp it
#                              vendors, and that llama.cpp's convert_hf_to_gguf.py + gguf-py
#   BUILD_DIR/oracles/llama-build/bin/
#                              (--llama-cpp only) libllama.so for the bindings, llama-quantize,
#                              llama-bench, llama-batched-bench, built from the vendored sources
# The llama.cpp build takes 15+ minutes on 2 cores, so `make test` does not run it: tests read
# llama.cpp's answers from goldens that scripts/gen_oracle_goldens.py made with it (committed
# under tests/data/oracles) and run the converter and transformers live.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(mkdir -p "${1:-$root/build}" && cd "${1:-$root/build}" && pwd)"
with_llama_cpp="${2:-}"
version=0.3.36
work="$build_dir/oracles"
venv="$work/venv"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
mkdir -p "$work"

venv_ok() {
  [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import torch, transformers, gguf, sentencepiece, accelerate, pytest, diskcache" 2>/dev/null
}
if ! venv_ok; then
  python3 -m venv "$venv"
  # transformers' GGUF loader and the converter need torch; PyPI's wheel is the only one
  # reachable here (it brings CUDA libraries that stay unused).
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch "transformers>=4.56" \
    "gguf>=0.17" numpy sentencepiece safetensors jinja2 protobuf accelerate pytest diskcache
  venv_ok
fi

if [ ! -f "$src/convert_hf_to_gguf.py" ]; then
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$work" "llama-cpp-python==$version"
  tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
fi

if [ "$with_llama_cpp" = --llama-cpp ] && [ ! -x "$work/llama-build/bin/llama-batched-bench" ]; then
  # One shared build serves the Python bindings (libllama.so) and the benchmark tools.
  nice -n 10 cmake -S "$src" -B "$work/llama-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  nice -n 10 cmake --build "$work/llama-build" -j "$(nproc)" \
    --target llama llama-quantize llama-bench llama-batched-bench
fi
