#!/usr/bin/env bash
# The one Python environment with PyTorch that tools and tests share, cached outside git:
#   scripts/setup-py-torch.sh  ->  prints the venv's folder (${NANOVLLM_CACHE_DIR:-~/.cache/nanovllm}/py-torch)
# Users of it: the GGUF oracles (transformers' own GGUF loader, llama.cpp's converter) and the
# ONNX export (transformers loads the checkpoint, onnx writes the graph). PyPI's torch is a CUDA
# build: with its NVIDIA wheels it is about 3.5 GB, so it is installed once per machine, not per
# build folder, and a second run only checks it.
set -euo pipefail
cache="${NANOVLLM_CACHE_DIR:-$HOME/.cache/nanovllm}"
venv="$cache/py-torch"
# Bump when the list changes: the venv is rebuilt when this stamp differs.
packages=(torch==2.15.0 "transformers>=5.0,<6" "gguf>=0.17" numpy sentencepiece safetensors
          jinja2 protobuf accelerate pytest diskcache "onnx>=1.19")
stamp="$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-16)"

# ctest runs its users side by side (onnx_exports, oracles): one installs, the others wait for it.
mkdir -p "$cache"
exec 9>"$cache/py-torch.lock"
flock 9
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "setting up $venv (PyPI's torch with its CUDA wheels: ~3.5 GB, once per machine)" >&2
  mkdir -p "$cache"
  # The stamp is written last, so a half-finished install is redone from scratch.
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
  echo "$stamp" > "$venv/.stamp"
fi
"$venv/bin/python" -c "import torch, transformers, gguf, onnx, pytest" >&2
echo "$venv"
