#!/usr/bin/env bash
# Builds the Python package from the source tree, installs it into a fresh venv and runs tests/python
# (pytest) against the installed copy: scripts/run-python-tests.sh [BUILD_DIR] [pytest args...].
# A second run downloads and compiles nothing new: the build tools' wheels stay in
# BUILD_DIR/python-test/wheels, the extension's CMake build in BUILD_DIR/python-test/ext, and the
# C++ libraries are BUILD_DIR's own (installed into BUILD_DIR/python-test/prefix), not compiled
# again. Any failure fails the run (the tests are never skipped).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(cd "${1:-$root/build}" && pwd)"
shift || true
work="$build_dir/python-test"
tools=("nanobind==3.1.0" "scikit-build-core==1.1.2" "pytest>=7")
test_deps=("pytest>=7" "jsonschema>=4")  # jsonschema: the oracle for structured outputs

mkdir -p "$work"
# .complete lists what was downloaded, so adding a package to the lists fetches it once.
wanted="${tools[*]} ${test_deps[*]}"
if [ "$(cat "$work/wheels/.complete" 2>/dev/null)" != "$wanted" ]; then
  python3 -m venv "$work/fetch-venv"  # Debian's python3 has no pip of its own
  "$work/fetch-venv/bin/pip" download --quiet --disable-pip-version-check -d "$work/wheels" "${tools[@]}" "${test_deps[@]}"
  echo "$wanted" > "$work/wheels/.complete"
fi
pip_offline=(--quiet --disable-pip-version-check --no-index --find-links "$work/wheels")
# The venv that builds stays (its nanobind sources keep their dates, so the kept CMake build
# does not recompile them); the one the tests import from is made fresh each run.
if [ ! -x "$work/build-venv/bin/python" ]; then
  python3 -m venv "$work/build-venv"
  "$work/build-venv/bin/pip" install "${pip_offline[@]}" "${tools[@]}"
fi

cmake --install "$build_dir" --prefix "$work/prefix" > /dev/null
launcher="$(sed -n 's/^CMAKE_CXX_COMPILER_LAUNCHER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")"
rm -rf "$work/dist" "$work/venv"
# What `pip install .` does, in two halves: build the wheel (no build isolation, so the kept
# CMake build sees the same nanobind every run), then install it into a fresh venv.
"$work/build-venv/bin/pip" wheel --quiet --disable-pip-version-check --no-build-isolation --no-deps \
  -w "$work/dist" -Cbuild-dir="$work/ext" -Ccmake.define.NANOVLLM_PREBUILT="$work/prefix" \
  ${launcher:+-Ccmake.define.CMAKE_CXX_COMPILER_LAUNCHER="$launcher"} "$root"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install "${pip_offline[@]}" "${test_deps[@]}" "$work"/dist/nanovllm-*.whl

export NANOVLLM_BIN="${NANOVLLM_BIN:-$build_dir/bin/nanovllm}"
export NANOVLLM_SHARED_DIR="${NANOVLLM_SHARED_DIR:-$root/../shared}"
export NANOVLLM_SOURCE_DIR="$root"
cd "$root/tests/python"
exec "$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
