#!/usr/bin/env bash
# Installs the Debian packages the build, tests, demo and benchmarks need. Idempotent and
# non-interactive: does nothing when every package is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates python3 python3-venv curl
  libgtest-dev libbenchmark-dev   # tests, micro-benchmarks
  libcli11-dev                    # the nanovllm command's argument parser
  nlohmann-json3-dev              # config.json, tokenizer.json, the server's JSON
  libpcre2-dev                    # pre-tokenizer regexes (UTF + Unicode properties, JIT)
  libicu-dev                      # tokenizer NFC normalization and Unicode character classes
  libsentencepiece-dev            # reading tokenizer.model when converting llama2.c checkpoints
  libboost-dev zlib1g-dev         # the OpenAI-compatible server's HTTP layer (Beast/Asio; gzip bodies)
  libedit-dev                     # line editing and history in `nanovllm chat` (BSD license)
  python3-dev                     # Python headers: the nanovllm package's extension (pip install .)
  libopenmpi-dev openmpi-bin      # tensor parallelism over MPI (mpirun -np N nanovllm ... --tensor-parallel-size N)
  haproxy nginx-light             # the routers of deploy/ that `make deploy-test` runs in front of replicas
  python3-onnx                    # one-node ONNX graphs of our custom op for its tests (tests/onnx)
)

# --fuzz: clang with libFuzzer and its OpenMP runtime, for `make fuzz` only. Debian 12's
# clang 19 (bookworm updates): clang 14 cannot build the tree (C++20 lambda captures of
# structured bindings, __builtin_cpu_supports("f16c")).
if [ "${1:-}" = "--fuzz" ]; then
  packages=(clang-19 libclang-rt-19-dev libomp-19-dev)
fi

# llguidance (structured outputs) is a Rust crate that the build compiles with cargo; Debian
# 12's cargo (1.63) is too old for it, so Rust comes from rustup.
if [ "${1:-}" != "--fuzz" ] && ! command -v cargo >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  echo "deps: cargo (Rust >= 1.87) is missing; it builds llguidance, the structured-output engine." >&2
  echo "      Install it with rustup: curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
