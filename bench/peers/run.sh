#!/usr/bin/env bash
# One command for the peer benchmark (bench/peers/README.md): installs the peers once
# (setup.sh, cached in ~/.cache/nanovllm/peers), builds `nanovllm`, makes the Qwen3-0.6B-shape
# BF16 checkpoint and its two conversions (llama.cpp's BF16 GGUF, OpenVINO's IR), then runs
# every workload on every engine, alternating, and writes bench/out/peers/RUN/table.md + .csv
# (naming the CPU and the load) and decode.png (decode tok/s against batch size).
#
#   bench/peers/run.sh [peers.py run flags]    e.g. --smoke (tiny shapes, minutes), --rounds 2,
#                                              --engines ours,llama.cpp, --workloads batched,serving
# Environment: BUILD (default build), SHARED (../shared), THREADS (2), NANOVLLM_CACHE.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SHARED=$(realpath "${SHARED:-../shared}")
THREADS=${THREADS:-2}
cache="${NANOVLLM_CACHE:-$HOME/.cache/nanovllm}/peers"
engines=ours,vllm,openvino,llama.cpp
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --engines) engines=${args[i + 1]} ;;
    --engines=*) engines=${args[i]#--engines=} ;;
  esac
done
has() { [[ ",$engines," == *",$1,"* ]]; }

# 1. The peers (a second run only checks them).
setup=(plot)
for e in vllm openvino llama.cpp; do has "$e" && setup+=("$e"); done
# llama.cpp's converter needs torch: the vLLM venv has it.
has llama.cpp && ! has vllm && [ ! -x "$cache/vllm/bin/python" ] && setup+=(vllm)
bench/peers/setup.sh "${setup[@]}"

# 2. Ours, and kernels_bench for the machine's limits (read bandwidth, FMA and BF16 peaks), which
#    the table's "% of the limit" rows divide by (measured before and after the run).
[ -f "$BUILD/build.ninja" ] || cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DNANOVLLM_SHARED_DIR="$SHARED" >/dev/null
cmake -S . -B "$BUILD" -DNANOVLLM_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target nanovllm_cli kernels_bench
ours="$BUILD/bin/nanovllm"

# 3. The checkpoint (random weights of Qwen3-0.6B's exact shape, with the real Qwen3 tokenizer so
#    that vLLM, the converters and the servers load it as a hub checkpoint), and its conversions.
mkdir -p bench/out
model=$(realpath -m bench/out/qwen3-0.6b-bf16)
[ -f "$model/model.safetensors" ] ||
  "$ours" make-model --config "$SHARED/configs/qwen3-0.6b.json" --out "$model" --dtype bf16 --seed 0 \
    --tokenizer "$SHARED/tokenizers/qwen3"
gguf=$model.gguf
if has llama.cpp && [ ! -f "$gguf" ]; then
  src=$(ls -d "$cache"/llama.cpp/llama_cpp_python-*/vendor/llama.cpp | tail -1)
  PYTHONPATH="$src/gguf-py" nice -n 10 "$cache/vllm/bin/python" "$src/convert_hf_to_gguf.py" "$model" \
    --outtype bf16 --outfile "$gguf"
fi
ov=$model-ov
if has openvino && [ ! -f "$ov/openvino_model.xml" ]; then
  # fp16 weights in the IR; the worker runs them in bf16 (see openvino_worker.py).
  nice -n 10 "$cache/openvino/bin/optimum-cli" export openvino --model "$model" \
    --task text-generation-with-past --weight-format fp16 "$ov"
fi

# 4. The run, then the plot.
out=bench/out/peers/$(date -u +%Y%m%d-%H%M%S)
python3 bench/peers/peers.py run --out "$out" --model "$model" --gguf "$gguf" --ov-model "$ov" \
  --nanovllm "$ours" --kernels-bench "$BUILD/bin/kernels_bench" --peers-cache "$cache" --llama-cpp "$cache/llama.cpp/llama-build" \
  --threads "$THREADS" "$@"
"$cache/plot/bin/python" bench/peers/plot.py "$out" "$out/decode.png"
echo "results: $out/table.md, $out/table.csv, $out/decode.png"
