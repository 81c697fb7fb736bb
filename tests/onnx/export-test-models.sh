#!/usr/bin/env bash
# Exports the checkpoints the ONNX tests run (ctest's fixture onnx_exports) into
# BUILD_DIR/onnx-models/NAME:  tests/onnx/export-test-models.sh BUILD_DIR NANOVLLM_BIN
#   - every tiny transformers-made checkpoint of tests/data/model (llama, mistral, qwen2, qwen3,
#     bf16 and f16 weights), TinyStories-656K from ../shared,
#   - qwen3-tiny: a random-weight Qwen3 shape around the real Qwen3 tokenizer and chat template
#     (`nanovllm make-model`, kept in BUILD_DIR/onnx-models/src), for the serve test.
# Each export is checked against transformers (export_onnx.py --check), with its weights in
# model.onnx.data (--external-data: the path every checkpoint over 2 GB takes). An export is redone
# only when the exporter or its checkpoint changed (a content hash in OUT/.export-stamp), and
# all stale ones share one start-up of torch + transformers.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "$1" && pwd)"
bin="$2"
shared="${NANOVLLM_SHARED_DIR:-$root/../shared}"
out_root="$build/onnx-models"
mkdir -p "$out_root/src"

# The chat model's checkpoint: deterministic (seed 7), so its hash, and its export, stay put.
python3 -c "import sys; sys.path.insert(0, '$root/tests/common'); from tiny_models import make_qwen3_tiny; \
make_qwen3_tiny('$bin', '$shared', '$out_root/src')"

sources=()
for d in "$root"/tests/data/model/*/; do sources+=("${d%/}"); done
sources+=("$shared/models/tinystories-656k" "$out_root/src/model")
names=()
for s in "${sources[@]}"; do names+=("$(basename "$s")"); done
names[-1]=qwen3-tiny

# What an export depends on: the exporter, its flags here, and every file of the checkpoint.
stamp_of() {
  (cd "$1" && sha256sum "$root/scripts/export_onnx.py" "$root/tests/onnx/export-test-models.sh" $(ls | sort)) |
    sha256sum | cut -c1-16
}

stale=()
for i in "${!sources[@]}"; do
  out="$out_root/${names[$i]}"
  stamp="$(stamp_of "${sources[$i]}")"
  if [ "$(cat "$out/.export-stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -f "$out/.export-stamp"
    stale+=("${sources[$i]}" "$out")
  fi
done
if [ ${#stale[@]} -eq 0 ]; then
  echo "onnx exports up to date in $out_root"
  exit 0
fi
"$root/scripts/export-onnx.sh" "${stale[@]}" --check --external-data
for i in "${!sources[@]}"; do
  stamp_of "${sources[$i]}" > "$out_root/${names[$i]}/.export-stamp"
done
