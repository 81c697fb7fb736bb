#!/usr/bin/env bash
# Exports a Hugging Face checkpoint to nanovllm's ONNX decoder (model.onnx + tokenizer/config
# files) for `--backend onnx`:  scripts/export-onnx.sh MODEL_DIR OUT_DIR [--check]
# Runs scripts/export_onnx.py in the shared PyTorch venv (scripts/setup-py-torch.sh: torch,
# transformers, onnx; installed once per machine under ~/.cache/nanovllm).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 MODEL_DIR OUT_DIR [--check]" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
venv="$(bash "$here/setup-py-torch.sh")"
exec "$venv/bin/python" "$here/export_onnx.py" "$@"
