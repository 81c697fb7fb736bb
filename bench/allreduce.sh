#!/usr/bin/env bash
# The cost of tensor parallelism's allreduce on this machine: Open MPI, 2 ranks, over shared
# memory (vader) and over TCP on loopback (the software floor of a network transport). Sizes are
# a step's hidden states: 1,024 floats = one token of Qwen3-0.6B (hidden 1024); 16,384 = a batch
# of 16; 65,536 = 64. Output: bench/out/allreduce.txt (docs/SCALING.md quotes it).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-mpi}
mkdir -p bench/out
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNANOVLLM_WITH_MPI=ON -DNANOVLLM_BUILD_BENCH=ON \
  -DNANOVLLM_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" --target allreduce_bench
root=(); if [ "$(id -u)" -eq 0 ]; then root=(--allow-run-as-root); fi
for btl in vader tcp; do
  echo "== btl $btl"
  mpirun "${root[@]}" --oversubscribe -np 2 --mca btl "self,$btl" "$BUILD/bin/allreduce_bench" 1024 4096 16384 65536 262144
done | tee bench/out/allreduce.txt
