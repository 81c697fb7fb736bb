#!/usr/bin/env bash
# Installs LibTorch for the torch backend from PyPI's torch wheel, into a cache outside git:
# scripts/setup-torch.sh [DIR] (default ${NANOVLLM_CACHE_DIR:-~/.cache/nanovllm}/torch-VERSION).
# Only the C++ library is wanted, so the wheel comes with --no-deps plus the two NVIDIA runtime
# wheels that libtorch_cpu.so is linked against (readelf -d: libcudart.so.13, libcupti.so.13):
# about 0.6 GB of downloads instead of the 5.3 GB a full `pip install torch` pulls in. The wheel
# is a CUDA build; its libtorch_cuda.so is loaded only for --device cuda, on a machine that has
# the rest of the CUDA wheels. Idempotent: a second run finds the stamp and does nothing.
set -euo pipefail
version="${NANOVLLM_TORCH_VERSION:-2.15.0}"
cuda_runtime="13.2.86.*"  # what torch 2.15.0's cuda-toolkit==13.2.2 pins (cudart, cupti)
dir="${1:-${NANOVLLM_CACHE_DIR:-$HOME/.cache/nanovllm}/torch-$version}"
stamp="$dir/.installed-torch-$version"
if [ -f "$stamp" ] && [ -f "$dir/torch/lib/libtorch_cpu.so" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
# pip from a venv of its own: Debian's python3 has no pip, python3-venv brings ensurepip.
venv="$dir/.pip-venv"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
echo "setup-torch: installing torch $version (C++ library) into $dir" >&2
nice -n 10 "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --target "$dir" --upgrade \
  "torch==$version" "nvidia-cuda-runtime==$cuda_runtime" "nvidia-cuda-cupti==$cuda_runtime" >&2
test -f "$dir/torch/lib/libtorch_cpu.so" && test -d "$dir/torch/include/torch"
touch "$stamp"
echo "$dir"
