#!/usr/bin/env bash
# Installs ONNX Runtime for the onnx backend into a cache outside git:
#   scripts/setup-onnx.sh [DIR]  ->  prints DIR (default ${NANOVLLM_CACHE_DIR:-~/.cache/nanovllm}/onnxruntime-VERSION)
# DIR/lib:     libonnxruntime.so.1 from PyPI's onnxruntime wheel (onnxruntime/capi/; it needs
#              only glibc 2.28). The wheel is taken with --no-deps: only its C library is wanted.
# DIR/include: the official C/C++ headers from Debian 13's libonnxruntime-dev (1.21, 85 KB),
#              fetched with `apt-get download` from the trixie suite of this machine's Debian
#              mirror through a private apt state (the system's sources and lists are untouched).
#              Its runtime package cannot be installed on Debian 12 (newer glibc, protobuf, ...).
# Headers 1.21 with runtime 1.32 is fine: the C API only grows, and a runtime serves every older
# API version (OrtGetApiBase()->GetApi(21)); the runner checks the version at start-up.
# Idempotent: a second run finds the stamp and does nothing.
set -euo pipefail
version="${NANOVLLM_ONNXRUNTIME_VERSION:-1.32.0}"
dir="${1:-${NANOVLLM_CACHE_DIR:-$HOME/.cache/nanovllm}/onnxruntime-$version}"
stamp="$dir/.installed-onnxruntime-$version"
if [ -f "$stamp" ] && [ -f "$dir/lib/libonnxruntime.so.1" ] && [ -f "$dir/include/onnxruntime_cxx_api.h" ]; then
  echo "$dir"
  exit 0
fi
echo "setup-onnx: installing ONNX Runtime $version (C library) and its headers into $dir" >&2
mkdir -p "$dir"
work="$(mktemp -d "$dir/.setup.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The runtime: one file of the wheel. pip from a venv of its own (Debian's python3 has no pip);
# the CPython 3.11 manylinux wheel whatever python this is (the C library is the same in all).
python3 -m venv "$work/pip-venv" >&2
"$work/pip-venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$work" "onnxruntime==$version" >&2
python3 - "$work"/onnxruntime-"$version"-*.whl "$dir/lib" "$version" <<'EOF'
import os, sys, zipfile
wheel, lib, version = sys.argv[1:]
os.makedirs(lib, exist_ok=True)
name = f"libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z, open(os.path.join(lib, name), "wb") as out:
    out.write(z.read(f"onnxruntime/capi/{name}"))
# Its SONAME is libonnxruntime.so.1: the name the loader looks for; .so is the link-time name.
for link in ("libonnxruntime.so.1", "libonnxruntime.so"):
    path = os.path.join(lib, link)
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(name, path)
EOF

# The headers: Debian 13's libonnxruntime-dev through a private apt configuration (the same
# mirror and keyring as the system's; only the package lists of trixie main are fetched).
apt_dir="$work/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
# The mirror apt already uses for this release's main component (apt-cache policy lists it).
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
mirror="$(apt-cache policy 2>/dev/null | awk -v s="$codename/main" '$3 == s {print $2; exit}')"
echo "deb ${mirror:-http://deb.debian.org/debian} trixie main" > "$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=-"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o "APT::Get::List-Cleanup=0" -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
          -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
          -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
          -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
          -o "APT::Sandbox::User=root")
apt-get -qq "${apt_opts[@]}" update >&2
(cd "$work" && apt-get -qq "${apt_opts[@]}" download libonnxruntime-dev >&2)
dpkg-deb -x "$work"/libonnxruntime-dev_*.deb "$work/dev"
rm -rf "$dir/include"
cp -r "$work/dev/usr/include/onnxruntime" "$dir/include"

test -f "$dir/lib/libonnxruntime.so.1" && test -f "$dir/include/onnxruntime_cxx_api.h"
touch "$stamp"
echo "$dir"
