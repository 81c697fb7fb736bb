#!/usr/bin/env bash
# The onnx backend beside the native one and beside onnxruntime-genai's own generator, on one
# checkpoint, engines alternating (native, onnx, genai) at batch 1 and batch B, ROUNDS times:
#   bench/onnx_bench.sh MODEL_DIR [ROUNDS]
# MODEL_DIR: a Hugging Face checkpoint (make bench's: nanovllm make-model --config
# ../shared/configs/qwen3-0.6b.json --dtype bf16 --seed 0 --tokenizer ../shared/tokenizers/qwen3).
# Exports it once with scripts/export-onnx.sh (MODEL_DIR-onnx) and with onnxruntime-genai's model
# builder (MODEL_DIR-genai, fp32, cpu), whose venv (PyPI onnxruntime-genai 0.18 + onnx_ir, torch
# and transformers from scripts/setup-py-torch.sh's venv) is made once under ~/.cache/nanovllm.
# Lengths: IN1/OUT1 at batch 1, IN/OUT at batch B (defaults 16/32 and 32/16: this machine is
# shared; make bench's 128/128 takes an hour per engine under a load of 20). Output: JSON lines.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="$(cd "$1" && pwd)"
rounds="${2:-1}"
B="${B:-16}" IN1="${IN1:-16}" OUT1="${OUT1:-32}" IN="${IN:-32}" OUT="${OUT:-16}" THREADS="${THREADS:-2}"
bin="${NANOVLLM_BIN:-$root/build/bin/nanovllm}"
cache="${NANOVLLM_CACHE:-$HOME/.cache/nanovllm}"

torch_venv="$(bash "$root/scripts/setup-py-torch.sh")"
genai_venv="$cache/ort-genai"
if ! "$genai_venv/bin/python" -c "import onnxruntime_genai, onnx_ir" 2>/dev/null; then
  python3 -m venv "$genai_venv"
  site="$(ls -d "$torch_venv"/lib/python3*/site-packages)"
  echo "$site" > "$(ls -d "$genai_venv"/lib/python3*/site-packages)/py-torch.pth"
  "$genai_venv/bin/pip" install --quiet --disable-pip-version-check "onnxruntime-genai==0.18.0" onnx_ir
fi
[ -f "$model-onnx/model.onnx" ] || bash "$root/scripts/export-onnx.sh" "$model" "$model-onnx"
[ -f "$model-genai/model.onnx" ] || "$genai_venv/bin/python" -m onnxruntime_genai.models.builder \
  -i "$model" -o "$model-genai" -p fp32 -e cpu -c "$model-genai-cache"

ours() {  # label, model, batch, in, out, flags...
  local label=$1 m=$2 b=$3 i=$4 o=$5; shift 5
  "$bin" bench --model "$m" --threads "$THREADS" --batch "$b" --input-len "$i" --output-len "$o" --json "$@" |
    sed "s/^{/{\"engine\":\"$label\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",/"
}
genai() {  # batch, in, out
  "$genai_venv/bin/python" "$root/bench/onnx_genai_bench.py" "$model-genai" --batch "$1" --input-len "$2" \
    --output-len "$3" --threads "$THREADS" | sed "s/^{/{\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",/"
}
for r in $(seq "$rounds"); do
  for shape in "1 $IN1 $OUT1" "$B $IN $OUT"; do
    set -- $shape
    ours native "$model" "$1" "$2" "$3"
    ours onnx "$model-onnx" "$1" "$2" "$3" --backend onnx
    genai "$1" "$2" "$3"
  done
done
