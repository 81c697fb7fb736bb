#!/usr/bin/env bash
# The same-CPU llama.cpp column of bench/RESULTS.md: builds llama.cpp from the copy vendored in
# PyPI's llama-cpp-python sdist (no GitHub access needed), converts the benchmark checkpoint to
# a BF16 GGUF with llama.cpp's own converter and runs llama-bench and llama-batched-bench with
# the shapes of the performance issue. Nothing here is part of the project's build or tests.
#
# Usage: bench/llama_cpp_baseline.sh [model dir]   (default: bench/out/qwen3-0.6b-bf16, made by
#        `make bench`). WORK (default /tmp/nanovllm-llama-cpp) holds the sources, build and venv.
#        About 15 minutes on 2 cores for the build, 7 for the runs. OUTTYPE=q8_0 converts to
#        llama.cpp's Q8_0 instead (the column for `--quantization int8`), written to
#        bench/out/llama_cpp_q8_0.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$(realpath "${1:-bench/out/qwen3-0.6b-bf16}")
WORK=${WORK:-/tmp/nanovllm-llama-cpp}
THREADS=${THREADS:-2}
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
SHARED=$(realpath "${SHARED:-../shared}")
OUTTYPE=${OUTTYPE:-bf16}
OUT=$(realpath bench/out)/llama_cpp$([ "$OUTTYPE" = bf16 ] || echo "_$OUTTYPE").txt
mkdir -p "$WORK"

# PYTHON: an interpreter that already has torch and transformers (else a venv is made here).
venv="$WORK/venv"
PYTHON=${PYTHON:-$venv/bin/python}
if [ ! -x "$PYTHON" ]; then
  python3 -m venv "$venv"
  # The converter needs torch (CPU wheel), transformers for the tokenizer, numpy and sentencepiece.
  "$venv/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu torch 2>/dev/null ||
    "$venv/bin/pip" install -q torch
  "$venv/bin/pip" install -q transformers numpy sentencepiece safetensors
fi

src="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
if [ ! -d "$src" ]; then
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: -d "$WORK" "llama-cpp-python==$VERSION"
  tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
fi
if [ ! -x "$src/build/bin/llama-batched-bench" ]; then
  cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_OPENSSL=OFF >/dev/null
  cmake --build "$src/build" -j "$(nproc)" --target llama-bench llama-batched-bench
fi

# The converter wants the tokenizer beside the weights; the random checkpoint has none.
gguf="$WORK/$(basename "$MODEL")-$OUTTYPE.gguf"
if [ ! -f "$gguf" ]; then
  staged="$WORK/hf-$(basename "$MODEL")"
  mkdir -p "$staged"
  ln -sf "$MODEL"/* "$staged"/
  cp -n "$SHARED"/tokenizers/qwen3/* "$staged"/
  PYTHONPATH="$src/gguf-py" "$PYTHON" "$src/convert_hf_to_gguf.py" "$staged" \
    --outtype "$OUTTYPE" --outfile "$gguf"
fi

{
  echo "# llama.cpp vendored in llama-cpp-python $VERSION (its build line below names the commit), $OUTTYPE, $THREADS threads, $(date -u +%F)"
  "$src/build/bin/llama-bench" -m "$gguf" -t "$THREADS" -p 512 -n 128 -r 3
  "$src/build/bin/llama-batched-bench" -m "$gguf" -t "$THREADS" -c 16384 -npp 128 -ntg 128 \
    -npl 4,16,64 2>/dev/null
} | tee "$OUT"
