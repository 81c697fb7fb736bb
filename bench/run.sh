#!/usr/bin/env bash
# `make bench`: kernel micro-benchmarks and end-to-end engine benchmarks on a random-weight
# checkpoint of Qwen3-0.6B's exact shape in BF16 (2 threads), the shape of the llama.cpp
# table in bench/RESULTS.md. Results go to bench/out/; bench/plot.py draws the decode plot.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
OUT=bench/out
mkdir -p "$OUT"

# WITH_TORCH=ON also runs the LibTorch backend on the same workloads (f32 on the CPU).
WITH_TORCH=${WITH_TORCH:-OFF}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNANOVLLM_BUILD_BENCH=ON -DNANOVLLM_WITH_TORCH="$WITH_TORCH" \
  -DNANOVLLM_BUILD_TESTS=OFF -DNANOVLLM_SHARED_DIR="$(realpath "$SHARED")" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
bin="$BUILD/bin"

model="$OUT/qwen3-0.6b-bf16"
if [ ! -f "$model/model.safetensors" ]; then
  "$bin/nanovllm" make-model --config "$SHARED/configs/qwen3-0.6b.json" --out "$model" --dtype bf16 --seed 0
fi

if [ -x "$bin/kernels_bench" ]; then
  OMP_NUM_THREADS=$THREADS "$bin/kernels_bench" --benchmark_out="$OUT/kernels.json" \
    --benchmark_out_format=json --benchmark_min_time=0.2
fi

e2e="$OUT/e2e.jsonl"
: > "$e2e"
run() {  # name, then nanovllm bench flags
  local name=$1; shift
  echo "== $name"
  "$bin/nanovllm" bench --model "$model" --threads "$THREADS" --json "$@" |
    sed "s/^{/{\"name\":\"$name\",/" | tee -a "$e2e"
}
run prefill_512 --batch 1 --input-len 512 --output-len 1
run decode_b1 --batch 1 --input-len 16 --output-len 128
for b in 4 16 64; do
  run "decode_b$b" --batch "$b" --input-len 128 --output-len 128
done
# The same weights rounded to int8 at load time (the column of llama.cpp's Q8_0).
run int8_prefill_512 --batch 1 --input-len 512 --output-len 1 --quantization int8
run int8_decode_b1 --batch 1 --input-len 16 --output-len 128 --quantization int8
run int8_decode_b16 --batch 16 --input-len 128 --output-len 128 --quantization int8
if [ "$WITH_TORCH" = ON ]; then
  run torch_prefill_512 --backend torch --batch 1 --input-len 512 --output-len 1
  run torch_decode_b1 --backend torch --batch 1 --input-len 16 --output-len 128
  run torch_decode_b16 --backend torch --batch 16 --input-len 128 --output-len 128
fi

# The plot needs matplotlib: a small venv beside the build, made once.
venv="$BUILD/venv-plot"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib || echo "(no matplotlib: plot skipped)"
fi
if "$venv/bin/python" -c "import matplotlib" 2>/dev/null; then
  # The same-CPU llama.cpp series from bench/llama_cpp_baseline.sh's output when it exists.
  llama=()
  [ -f "$OUT/llama_cpp.txt" ] && llama=("$OUT/llama_cpp.txt")
  "$venv/bin/python" bench/plot.py "$e2e" bench/decode_throughput.png "${llama[@]}"
fi
