#!/usr/bin/env bash
# The torch backend's CUDA check, for a machine with an NVIDIA GPU and a Python whose torch is a
# CUDA build (e.g. an H200 with torch 2.11+cu130), CMake and the project's Debian packages
# (scripts/install-deps.sh; cargo with llguidance's crates). About 5 minutes on 16 cores:
#   1. builds against that Python's torch (no scripts/setup-torch.sh download) into build-cuda/;
#   2. greedy ids of --backend torch --device cuda (f32, then the checkpoint's dtype) against the
#      native runner on every checkpoint of tests/data/model;
#   3. decode tok/s at batch 1/16/64/256 on a random-weight Qwen3-0.6B-shape BF16 checkpoint.
# Results go to stdout and build-cuda/cuda-check/ (the README's backend table takes them).
# PYTHON (default python3), SHARED (default ../shared, for the Qwen3-0.6B config), BUILD.
# A dry run of the same steps on the CPU with a build that has the torch backend:
#   DEVICE=cpu BIN=build/bin/nanovllm BATCHES= scripts/cuda-check.sh   (BATCHES= skips the bench)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SHARED=${SHARED:-../shared}
BUILD=${BUILD:-build-cuda}
DEVICE=${DEVICE:-cuda}
BATCHES=${BATCHES-1 16 64 256}
OUT="$BUILD/cuda-check"
mkdir -p "$OUT"

if [ "$DEVICE" != cpu ]; then
  "$PY" -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"; print("torch", torch.__version__,
    "CUDA", torch.version.cuda, "on", torch.cuda.get_device_name(0))' | tee "$OUT/device.txt"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/device.txt" || true
fi

bin=${BIN:-}
if [ -z "$bin" ]; then
  # The folder that holds torch/ (and nvidia/ with the CUDA runtime), as cmake/torch.cmake wants it.
  torch_dir=$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
  gen=$(command -v ninja >/dev/null && echo Ninja || echo "Unix Makefiles")
  cmake -S . -B "$BUILD" -G "$gen" -DCMAKE_BUILD_TYPE=Release -DNANOVLLM_WITH_TORCH=ON \
    -DNANOVLLM_TORCH_DIR="$torch_dir" -DNANOVLLM_BUILD_TESTS=OFF -DNANOVLLM_WITH_SERVER=OFF \
    -DNANOVLLM_WITH_MPI=OFF -DNANOVLLM_SHARED_DIR="$(realpath "$SHARED")" >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target nanovllm_cli
  bin="$BUILD/bin/nanovllm"
fi
"$bin" --version | tee -a "$OUT/device.txt"

# 2. Greedy ids: 24 new tokens from two prompts (the torch runner feeds its own tokens back, so
# one early difference shows in every later id).
ids() {  # model, then backend flags
  local model=$1; shift
  "$bin" generate --model "$model" --prompt-ids 1,200,12,116,107 --prompt-ids 1,5,9,2,7,3,11 --max-tokens 24 \
    --temperature 0 --ignore-eos --json --kv-cache-dtype f32 "$@" | "$PY" -c \
    'import json, sys; print(";".join(",".join(map(str, json.loads(l)["token_ids"])) for l in sys.stdin))'
}
fail=0
for model in tests/data/model/*/; do
  # The scalar kernel table keeps activations in f32 for every weight dtype, as torch's f32 does.
  want=$(NANOVLLM_ISA=scalar ids "$model" --backend native --threads 4)
  for dtype in f32 auto; do
    got=$(ids "$model" --backend torch --device "$DEVICE" --dtype "$dtype")
    if [ "$got" = "$want" ]; then verdict=same; else verdict=DIFFERENT; [ "$dtype" = f32 ] && fail=1; fi
    echo "greedy $(basename "$model") $DEVICE dtype=$dtype: $verdict" | tee -a "$OUT/greedy.txt"
    [ "$verdict" = same ] || printf '  native %s\n  torch  %s\n' "$want" "$got" | tee -a "$OUT/greedy.txt"
  done
done

# 3. Decode speed: llama-batched-bench's shape, 128 prompt + 128 new tokens per sequence.
model="$BUILD/qwen3-0.6b-bf16"
[ -z "$BATCHES" ] || [ -f "$model/model.safetensors" ] ||
  "$bin" make-model --config "$SHARED/configs/qwen3-0.6b.json" --out "$model" --dtype bf16 --seed 0
: > "$OUT/bench.jsonl"
for b in $BATCHES; do
  for dtype in bf16 f32; do
    "$bin" bench --model "$model" --backend torch --device "$DEVICE" --dtype "$dtype" --batch "$b" \
      --input-len 128 --output-len 128 --json | sed "s/^{/{\"batch\":$b,\"dtype\":\"$dtype\",/" | tee -a "$OUT/bench.jsonl"
  done
done
"$PY" -c 'import json, sys
print("| batch | dtype | decode tok/s | prefill tok/s | ITL p50 ms |")
print("|---|---|---|---|---|")
for l in open(sys.argv[1]):
    j = json.loads(l)
    print("| %d | %s | %.0f | %.0f | %.2f |" % (j["batch"], j["dtype"], j["decode_tok_s"], j["prefill_tok_s"], j["itl_ms_p50"]))' \
  "$OUT/bench.jsonl" | tee "$OUT/bench.md"
[ "$fail" = 0 ] && echo "cuda-check: greedy ids (f32) equal the native runner's on every test checkpoint" ||
  { echo "cuda-check: greedy ids differ (above)"; exit 1; }
